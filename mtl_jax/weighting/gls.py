"""Geometric loss strategy (Chennupati, Sistu, Yogamani & Rawashdeh, CVPR
Workshops 2019, "MultiNet++: Multi-Stream Feature Aggregation and Geometric
Loss Strategy for Multi-Task Learning").

The objective is the geometric mean of the task losses,
`L = (prod_i L_i)^(1/T)`, whose gradient is `sum_i L / (T L_i) grad L_i`: task i
weighs `L / (T L_i)` (computed in log space). Over the present tasks only;
no hyper-parameters.
"""

from __future__ import annotations

import jax.numpy as jnp

from mtl_jax.weighting.base import LossWeighting, init_empty, present_mask, register

_EPS = 1e-12


@register("gls")
def gls() -> LossWeighting:
  """GLS (see module docstring)."""

  def update(losses_k, state, **extras):
    present_k = present_mask(extras, losses_k.shape[0])
    count = jnp.maximum(jnp.sum(present_k), 1.0)
    logs_k = jnp.log(jnp.maximum(losses_k.astype(jnp.float32), _EPS))
    geometric = jnp.exp(jnp.sum(logs_k * present_k) / count)
    weights_k = present_k * geometric / (count * jnp.exp(logs_k))
    return weights_k.astype(losses_k.dtype), state

  return LossWeighting(init_empty, update)

"""The seed's GradNorm-style rule: `lambda_i <- lambda_i * g_i / sum_j g_j`.

`g_i` is the norm of task i's gradient (measured where the run's gradient
mode says; by default at the shared representation, free in the step's one
backward pass). Applied after each step, the rule alone shrinks every weight
geometrically, so the weights of the present tasks are renormalised to keep
their sum (the weights start at 1, so they sum to the number of tasks T):
the rule then moves weight towards the tasks with the larger gradients.
Absent tasks keep their weights.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting.base import LossWeighting, present_mask, register


class NormRatioState(NamedTuple):
  weights_k: jax.Array


@register("norm_ratio")
def norm_ratio() -> LossWeighting:
  """The seed's rule (no hyper-parameters); weights start at 1."""

  def init(num_tasks):
    return NormRatioState(jnp.ones((num_tasks,), jnp.float32))

  def update(losses_k, state, **extras):
    del extras
    return state.weights_k.astype(losses_k.dtype), state

  def observe(grad_norms_k, state, **extras):
    present_k = present_mask(extras, grad_norms_k.shape[0])
    weights_k = state.weights_k
    scaled_k = weights_k * grad_norms_k / jnp.maximum(
        jnp.sum(grad_norms_k * present_k), 1e-12)
    # Keep the present tasks' total weight; a task whose gradient vanished
    # would otherwise never recover, so weights stay above a floor.
    total = jnp.sum(weights_k * present_k)
    scaled_k = scaled_k * total / jnp.maximum(jnp.sum(scaled_k * present_k), 1e-12)
    scaled_k = jnp.maximum(scaled_k, 1e-6)
    return NormRatioState(jnp.where(present_k > 0, scaled_k, weights_k))

  return LossWeighting(init, update, observe=observe)

"""Random loss weighting (Lin, Ye, Xu, Shi & Zhang, TMLR 2022, "Reasonable
Effectiveness of Random Weighting: A Litmus Test for Multi-Task Learning").

Every step draws `z ~ N(0, I)` and weighs the tasks `softmax(z)` (the paper's
default distribution), over the present tasks; the weights sum to 1, as in
the paper (the equal weighting sums to T).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.weighting.base import (LossWeighting, init_empty, present_mask, register,
                                    require_rng)


@register("rlw")
def rlw() -> LossWeighting:
  """RLW with normal logits (no hyper-parameters)."""

  def update(losses_k, state, **extras):
    present_k = present_mask(extras, losses_k.shape[0])
    logits_k = jax.random.normal(require_rng(extras, "rlw"), losses_k.shape, jnp.float32)
    weights_k = jax.nn.softmax(jnp.where(present_k > 0, logits_k, -jnp.inf))
    return (weights_k * present_k).astype(losses_k.dtype), state

  return LossWeighting(init_empty, update)

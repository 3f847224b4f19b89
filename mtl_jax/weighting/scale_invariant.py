"""Scale-invariant loss (the baseline of Navon et al., ICML 2022, "Multi-Task
Learning as a Bargaining Game", Section 6: minimise `sum_i log L_i`).

The gradient of `log L_i` is `grad L_i / L_i`, so each task weighs `1 / L_i`
(not differentiated): rescaling a task's loss by a constant changes
nothing. Losses at or below `eps` weigh `1 / eps`. Absent tasks weigh 0.
"""

from __future__ import annotations

import jax.numpy as jnp

from mtl_jax.weighting.base import LossWeighting, init_empty, present_mask, register


@register("scale_invariant")
def scale_invariant(eps: float = 1e-8) -> LossWeighting:
  """`sum_i log L_i` as loss weights `1 / L_i` (see module docstring).

  Args:
    eps: the smallest loss divided by.
  """

  def update(losses_k, state, **extras):
    present_k = present_mask(extras, losses_k.shape[0])
    weights_k = present_k / jnp.maximum(losses_k.astype(jnp.float32), eps)
    return weights_k.astype(losses_k.dtype), state

  return LossWeighting(init_empty, update)

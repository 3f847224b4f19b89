"""The seed's sigmoid-of-loss rule: `lambda_i = sigmoid(L_i)`.

Each task weighs the logistic sigmoid of its current loss, so a task with a
higher loss weighs more (between 0.5 and 1 for the non-negative losses of
classification and tagging). Stateless; weights are not differentiated.
"""

from __future__ import annotations

import jax

from mtl_jax.weighting.base import LossWeighting, init_empty, register


@register("loss_sigmoid")
def loss_sigmoid() -> LossWeighting:
  """The seed's rule (no hyper-parameters)."""

  def update(losses_k, state, **extras):
    del extras
    return jax.nn.sigmoid(losses_k), state

  return LossWeighting(init_empty, update)

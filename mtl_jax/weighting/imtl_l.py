"""IMTL-L (Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, ICLR 2021, "Towards
Impartial Multi-task Learning"), the loss half of IMTL.

Each task has a learned scale parameter `s_i`; the objective is
`sum_i exp(s_i) L_i - s_i`, so task i weighs `exp(s_i)` and the optimum is
`exp(s_i) L_i = 1`: every scaled loss is driven to the same value, whatever
the task's loss scale. The s_i start at 0 (weights 1) and take their own
optimizer step inside `update` on the gradient `exp(s_i) L_i - 1` (LibMTL
trains them with the model's optimizer; here, as for `uncertainty`, Adam
at 0.01 by default, since the model's learning rate is sized for a
Transformer); the weights returned are those before the step. Absent tasks
do not move. (IMTL, the hybrid, is `imtl_l` as the loss weighting with
`imtl_g` as the aggregation: a run has one balancing method, so the hybrid
needs both halves in one step and is not offered.)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting import learned
from mtl_jax.weighting.base import LossWeighting, present_mask, register


class IMTLLState(NamedTuple):
  scales_k: jax.Array  # s_i; the weights are exp(s_i)
  opt_state: Any


def imtl_l_objective(scales_k, losses_k, present_k):
  """`sum_i exp(s_i) L_i - s_i` over the present tasks."""
  return jnp.sum((jnp.exp(scales_k) * losses_k - scales_k) * present_k)


@register("imtl_l")
def imtl_l(learning_rate: float = 0.01, optimizer: str = "adam") -> LossWeighting:
  """IMTL-L (see module docstring).

  Args:
    learning_rate: of the scales' own optimizer.
    optimizer: 'adam' or 'sgd'.
  """
  opt = learned.weights_optimizer(optimizer, learning_rate)

  def init(num_tasks):
    scales_k = jnp.zeros((num_tasks,), jnp.float32)
    return IMTLLState(scales_k, opt.init(scales_k))

  def update(losses_k, state, **extras):
    present_k = present_mask(extras, losses_k.shape[0])
    weights_k = jnp.exp(state.scales_k) * present_k
    scales_k, opt_state = learned.step(imtl_l_objective, opt, state.scales_k,
                                       state.opt_state, losses_k, present_k)
    return weights_k.astype(losses_k.dtype), IMTLLState(scales_k, opt_state)

  return LossWeighting(init, update)

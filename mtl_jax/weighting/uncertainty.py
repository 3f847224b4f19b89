"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018, "Multi-Task Learning
Using Uncertainty to Weigh Losses for Scene Geometry and Semantics").

Each task has a learned log-variance `s_i = log sigma_i^2`; the objective is
`sum_i exp(-s_i) L_i + s_i` (the paper's classification form with
`1/sigma^2` weights, as most implementations write it), so task i weighs
`exp(-s_i)` and the optimum is `exp(-s_i) = 1 / L_i`. The log-variances start
at 0 (weights 1, the equal weighting) and take their own optimizer step
inside `update` on the gradient `1 - exp(-s_i) L_i` of that objective (the
model's optimizer and learning rate stay the Transformer's); the weights
returned are those before the step, as when both are trained on the same
loss. Defaults: Adam, learning rate 0.01. Absent tasks do not move.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting import learned
from mtl_jax.weighting.base import LossWeighting, present_mask, register


class UncertaintyState(NamedTuple):
  log_vars_k: jax.Array
  opt_state: Any


def uncertainty_objective(log_vars_k, losses_k, present_k):
  """`sum_i exp(-s_i) L_i + s_i` over the present tasks."""
  return jnp.sum((jnp.exp(-log_vars_k) * losses_k + log_vars_k) * present_k)


@register("uncertainty")
def uncertainty(learning_rate: float = 0.01, optimizer: str = "adam") -> LossWeighting:
  """Uncertainty weighting (see module docstring).

  Args:
    learning_rate: of the log-variances' own optimizer.
    optimizer: 'adam' or 'sgd'.
  """
  opt = learned.weights_optimizer(optimizer, learning_rate)

  def init(num_tasks):
    log_vars_k = jnp.zeros((num_tasks,), jnp.float32)
    return UncertaintyState(log_vars_k, opt.init(log_vars_k))

  def update(losses_k, state, **extras):
    present_k = present_mask(extras, losses_k.shape[0])
    weights_k = jnp.exp(-state.log_vars_k)
    log_vars_k, opt_state = learned.step(uncertainty_objective, opt, state.log_vars_k,
                                         state.opt_state, losses_k, present_k)
    return weights_k.astype(losses_k.dtype), UncertaintyState(log_vars_k, opt_state)

  return LossWeighting(init, update)

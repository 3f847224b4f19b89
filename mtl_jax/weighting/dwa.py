"""Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019, "End-to-End
Multi-Task Learning with Attention").

`w_i = T * softmax_i(r_i / temperature)` with `r_i = L_i(t-1) / L_i(t-2)`, the
ratio of task i's average loss over the last two periods; weights are 1
until two periods are complete. The paper's period is an epoch and its
temperature 2; a step-based loop has no epochs, so the period is a number
of steps (`period`, default 100: set it to your steps per epoch to follow
the paper). Absent tasks add nothing to the averages, weigh 0 and leave the
softmax; a task absent for a whole period keeps ratio 1.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting.base import LossWeighting, present_mask, register


class DWAState(NamedTuple):
  loss_sums_k: jax.Array  # this period's summed losses
  counts_k: jax.Array  # this period's number of steps with the task present
  step_in_period: jax.Array  # int32
  last_k: jax.Array  # average loss of the last complete period
  before_last_k: jax.Array  # ... and of the one before
  periods_done: jax.Array  # int32


@register("dwa")
def dwa(temperature: float = 2.0, period: int = 100) -> LossWeighting:
  """DWA (see module docstring).

  Args:
    temperature: the softmax temperature (the paper's T = 2).
    period: steps over which losses are averaged (the paper's epoch).
  """
  if period < 1:
    raise ValueError(f"dwa: period must be at least 1 step, got {period}")

  def init(num_tasks):
    zeros_k = jnp.zeros((num_tasks,), jnp.float32)
    return DWAState(zeros_k, zeros_k, jnp.int32(0), zeros_k, zeros_k, jnp.int32(0))

  def update(losses_k, state, **extras):
    num_tasks = losses_k.shape[0]
    present_k = present_mask(extras, num_tasks)
    valid_k = (state.last_k > 0) & (state.before_last_k > 0)
    ratios_k = jnp.where(valid_k, state.last_k / jnp.where(valid_k, state.before_last_k,
                                                           1.0), 1.0)
    logits_k = jnp.where(present_k > 0, ratios_k / temperature, -jnp.inf)
    dynamic_k = jnp.sum(present_k) * jax.nn.softmax(logits_k)
    weights_k = jnp.where(state.periods_done >= 2, dynamic_k, present_k)

    sums_k = state.loss_sums_k + losses_k.astype(jnp.float32) * present_k
    counts_k = state.counts_k + present_k
    step_in_period = state.step_in_period + 1
    period_ends = step_in_period >= period
    averages_k = jnp.where(counts_k > 0, sums_k / jnp.maximum(counts_k, 1.0), state.last_k)
    zeros_k = jnp.zeros_like(sums_k)
    state = DWAState(
        loss_sums_k=jnp.where(period_ends, zeros_k, sums_k),
        counts_k=jnp.where(period_ends, zeros_k, counts_k),
        step_in_period=jnp.where(period_ends, 0, step_in_period),
        last_k=jnp.where(period_ends, averages_k, state.last_k),
        before_last_k=jnp.where(period_ends, state.last_k, state.before_last_k),
        periods_done=state.periods_done + period_ends.astype(jnp.int32))
    return weights_k.astype(losses_k.dtype), state

  return LossWeighting(init, update)

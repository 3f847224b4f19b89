"""STCH (Lin et al., ICML 2024, "Smooth Tchebycheff
Scalarization for Multi-Objective Optimization"; LibMTL's STCH).

The smooth Tchebycheff scalarisation of the log losses relative to a nadir
point z: `T mu log sum_i exp(log(L_i / z_i) / mu)`, a soft maximum that puts
the weight on the task furthest behind (mu -> 0: the worst task alone). As
loss weights (the train step minimises `sum_i w_i L_i`), its gradient is
`w_i = T softmax_i(log(L_i / z_i) / mu) / L_i`. For the first
`warmup_steps` the tasks train on `sum_i log L_i` (w_i = 1 / L_i) and z is
the mean loss of those steps (LibMTL warms up for 4 epochs and takes the
last one's mean; this library counts steps). Absent tasks weigh 0 and their
losses stay out of z.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting.base import LossWeighting, present_mask, register


class STCHState(NamedTuple):
  loss_sums_k: jax.Array  # warm-up losses, summed per task
  counts_k: jax.Array  # warm-up steps each task took part in
  steps: jax.Array  # int32 []


@register("stch")
def stch(mu: float = 1.0, warmup_steps: int = 100) -> LossWeighting:
  """STCH (see module docstring).

  Args:
    mu: the smoothing (LibMTL's default 1.0).
    warmup_steps: steps on `sum log L_i` whose mean losses form the nadir point.

  Raises:
    ValueError: a non-positive `mu` or `warmup_steps`.
  """
  if mu <= 0 or warmup_steps < 1:
    raise ValueError(f"stch: needs mu > 0 and warmup_steps >= 1, got {mu}, {warmup_steps}")

  def init(num_tasks):
    zeros_k = jnp.zeros((num_tasks,), jnp.float32)
    return STCHState(zeros_k, zeros_k, jnp.int32(0))

  def update(losses_k, state, **extras):
    present_k = present_mask(extras, losses_k.shape[0])
    losses_k32 = losses_k.astype(jnp.float32)
    warming = state.steps < warmup_steps
    log_weights_k = present_k / (losses_k32 + 1e-20)
    nadir_k = state.loss_sums_k / jnp.maximum(state.counts_k, 1.0)
    relative_k = jnp.log(losses_k32 / jnp.maximum(nadir_k, 1e-20) + 1e-20)
    soft_k = jax.nn.softmax(jnp.where(present_k > 0, relative_k / mu, -jnp.inf))
    tchebycheff_k = jnp.sum(present_k) * soft_k / (losses_k32 + 1e-20 * nadir_k)
    weights_k = jnp.where(warming, log_weights_k, tchebycheff_k * present_k)
    new_state = STCHState(
        jnp.where(warming, state.loss_sums_k + losses_k32 * present_k, state.loss_sums_k),
        jnp.where(warming, state.counts_k + present_k, state.counts_k), state.steps + 1)
    return weights_k.astype(losses_k.dtype), new_state

  return LossWeighting(init, update)

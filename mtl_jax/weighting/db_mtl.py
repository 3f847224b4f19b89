"""DB-MTL (Lin et al., 2023, arXiv:2308.12029, "Dual-Balancing for Multi-Task
Learning"; LibMTL's DB_MTL).

Two balancings at once. Loss scales: each task's gradient is that of
`log(L_i + 1e-8)`, i.e. `g_i / (L_i + 1e-8)`. Gradient magnitudes: a
per-task buffer follows those gradients, `b_i <- g~_i + beta_t (b_i - g~_i)`
with `beta_t = beta / t^beta_sigma`, and the update is
`sum_i (max_j ||b_j|| / ||b_i||) b_i`: every task's buffered gradient scaled
to the largest norm. Defaults: LibMTL's (beta 0.9, beta_sigma 0). The
buffers are per-task copies of the shared gradient, so DB-MTL needs
`gradient_mode='full'` and k times the shared parameters in its state.
Absent tasks keep their buffer and take no part in the step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import (GradientAggregation, present_mask, register,
                                    require_losses)


class DBMTLState(NamedTuple):
  buffer_k: Any  # per task, the buffered log-loss gradient (shared shapes)
  steps: jax.Array  # int32 []: steps taken


@register("db_mtl")
def db_mtl(beta: float = 0.9, beta_sigma: float = 0.0, shared_shapes: Any = None
           ) -> GradientAggregation:
  """DB-MTL (see module docstring).

  Args:
    beta, beta_sigma: the buffer's memory `beta / t^beta_sigma`.
    shared_shapes: the shared parameters' shapes (from the run).
  """

  def init(num_tasks):
    return DBMTLState(linalg.per_task_zeros(shared_shapes, num_tasks, "db_mtl"), jnp.int32(0))

  def update(grads_k, state, **extras):
    k = jax.tree.leaves(grads_k)[0].shape[0]
    present_k = present_mask(extras, k)
    losses_k = require_losses(extras, "db_mtl")  # for the gradients of log losses
    t = (state.steps + 1).astype(jnp.float32)
    log_grads_k = linalg.mask_tasks(grads_k, 1.0 / (losses_k + 1e-8))
    # b <- g~ + m (b - g~) is b <- b - (1 - m) (b - g~).
    buffer_k = linalg.track(state.buffer_k, log_grads_k, 1.0 - beta / t ** beta_sigma,
                            present_k)
    norms_k = linalg.norms(buffer_k)
    largest = jnp.max(jnp.where(present_k > 0, norms_k, 0.0))
    coeffs_k = present_k * largest / (norms_k + 1e-8)
    return linalg.combine(coeffs_k, buffer_k), DBMTLState(buffer_k, state.steps + 1)

  return GradientAggregation(init, update, gradient_mode="full", modes=("full",))

"""MoCo (Fernando, Shen, Liu, Chaudhury, Murugesan & Chen, ICLR 2023,
"Mitigating Gradient Bias in Multi-objective Learning: A Provably Convergent
Approach"; LibMTL's MoCo, from the authors' code).

Each task's gradient is first rescaled to its loss, `g_i / ||g_i|| * L_i`; a
tracking variable y_i follows it, `y_i <- y_i - beta_t (y_i - g_i)`, which
removes the bias a single noisy batch puts into the weights; the weights take
one step `lambda <- softmax(lambda - gamma_t (Y Y^T + rho I) lambda)` and the
update is `Y^T lambda`. Step sizes decay as `beta / t^beta_sigma` and
`gamma / t^gamma_sigma` (t = 1, 2, ...). Defaults: LibMTL's. The tracking
variables are per-task copies of the shared gradient, so MoCo needs
`gradient_mode='full'` and k times the shared parameters in its state.
Absent tasks keep their y and weight; the softmax runs over the present ones
(a constant shift of lambda there changes nothing).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import (GradientAggregation, present_mask, register,
                                    require_losses)


class MoCoState(NamedTuple):
  y_k: Any  # per task, the tracked gradient (shared shapes)
  lambda_k: jax.Array
  steps: jax.Array  # int32 []: steps taken


@register("moco")
def moco(beta: float = 0.5, beta_sigma: float = 0.5, gamma: float = 0.1,
         gamma_sigma: float = 0.5, rho: float = 0.0, shared_shapes: Any = None
         ) -> GradientAggregation:
  """MoCo (see module docstring).

  Args:
    beta, beta_sigma: the tracking rate `beta / t^beta_sigma`.
    gamma, gamma_sigma: the weights' step `gamma / t^gamma_sigma`.
    rho: the weights' l2 regularisation.
    shared_shapes: the shared parameters' shapes (from the run).
  """

  def init(num_tasks):
    return MoCoState(linalg.per_task_zeros(shared_shapes, num_tasks, "moco"),
                     jnp.full((num_tasks,), 1.0 / num_tasks, jnp.float32), jnp.int32(0))

  def update(grads_k, state, **extras):
    k = jax.tree.leaves(grads_k)[0].shape[0]
    present_k = present_mask(extras, k)
    losses_k = require_losses(extras, "moco")  # each gradient is rescaled to its loss
    t = (state.steps + 1).astype(jnp.float32)
    scale_k = losses_k / (linalg.norms(grads_k) + 1e-8)
    y_k = linalg.track(state.y_k, linalg.mask_tasks(grads_k, scale_k), beta / t ** beta_sigma,
                present_k)
    # The present tasks' weights as a distribution of their own (all present: lambda).
    mass = jnp.sum(state.lambda_k * present_k)
    current_k = state.lambda_k * present_k / jnp.maximum(mass, 1e-30)
    step_k = (linalg.gram(y_k) + rho * jnp.eye(k)) @ current_k
    logits_k = current_k - gamma / t ** gamma_sigma * step_k
    coeffs_k = jax.nn.softmax(jnp.where(present_k > 0, logits_k, -jnp.inf))
    lambda_k = jnp.where(present_k > 0, coeffs_k * mass, state.lambda_k)
    return linalg.combine(coeffs_k, y_k), MoCoState(y_k, lambda_k, state.steps + 1)

  return GradientAggregation(init, update, gradient_mode="full", modes=("full",))

"""Nash-MTL (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya,
ICML 2022, "Multi-Task Learning as a Bargaining Game").

The update `sum_k alpha_k g_k` is the Nash bargaining solution:
`alpha > 0` with `G alpha = 1 / alpha` (elementwise), G the Gram matrix of the
task gradients. That is the stationarity condition of the strictly convex
`f(alpha) = 1/2 alpha^T G alpha - sum_k log alpha_k`, which we minimise in JAX
by damped Newton steps (`iterations`, default 20, as the reference code's
20 CCP iterations), warm-started from the previous step's solution; no CPU
solver in the step. As the reference code, G is normalised by its Frobenius
norm for the solve and alpha rescaled back, so the update has norm
sqrt(#tasks) (the reference then clips the shared gradient to norm 1, which
our optimizer's `clip_norm=1.0` does for the whole gradient). A small ridge
(`regularization`, relative to the normalised G) keeps the problem bounded
when gradients are exactly opposed. Absent tasks get alpha 0.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting.base import GradientAggregation, from_gram, present_mask, register


class NashState(NamedTuple):
  alpha_k: jax.Array  # the last solution for the normalised Gram matrix (0: none yet)


def nash_solve(gram_kk, start_k, iterations: int):
  """`argmin_{alpha > 0} 1/2 alpha^T G alpha - sum log alpha` by damped Newton.

  Damped Newton steps `alpha -= delta / (1 + lambda)` (lambda the Newton
  decrement) stay inside alpha > 0 for this self-concordant function and
  converge quadratically near the solution.
  """

  def body(_, alpha_k):
    grad_k = gram_kk @ alpha_k - 1.0 / alpha_k
    hessian_kk = gram_kk + jnp.diag(1.0 / alpha_k ** 2)
    delta_k = jnp.linalg.solve(hessian_kk, grad_k)
    decrement = jnp.sqrt(jnp.maximum(grad_k @ delta_k, 0.0))
    return alpha_k - delta_k / (1.0 + decrement)

  return jax.lax.fori_loop(0, iterations, body, start_k)


@register("nash_mtl")
def nash_mtl(iterations: int = 20, regularization: float = 1e-5) -> GradientAggregation:
  """Nash-MTL (see module docstring).

  Args:
    iterations: damped Newton steps per training step.
    regularization: ridge added to the Frobenius-normalised Gram matrix.
  """

  def init(num_tasks):
    return NashState(jnp.zeros((num_tasks,), jnp.float32))

  def weigh(gram_kk, state, **extras):
    num_tasks = gram_kk.shape[0]
    active_k = (present_mask(extras, num_tasks) > 0) & (jnp.diagonal(gram_kk) > 0)
    active_kk = active_k[:, None] & active_k[None, :]
    masked_kk = jnp.where(active_kk, gram_kk, 0.0)
    scale = jnp.maximum(jnp.linalg.norm(masked_kk), 1e-30)
    # Inactive tasks decouple (identity rows) and are zeroed afterwards.
    normalised_kk = jnp.where(active_kk, masked_kk / scale, jnp.eye(num_tasks))
    normalised_kk = normalised_kk + regularization * jnp.eye(num_tasks)
    fresh_k = 1.0 / jnp.sqrt(jnp.diagonal(normalised_kk))  # exact for orthogonal gradients
    start_k = jnp.where(active_k & (state.alpha_k > 0), state.alpha_k, fresh_k)
    alpha_k = nash_solve(normalised_kk, start_k, iterations)
    new_state = NashState(jnp.where(active_k, alpha_k, state.alpha_k))
    return jnp.where(active_k, alpha_k / jnp.sqrt(scale), 0.0), new_state

  return from_gram(init, weigh)

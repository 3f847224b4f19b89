"""Nash-MTL (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya,
ICML 2022, "Multi-Task Learning as a Bargaining Game").

The update `sum_k alpha_k g_k` is the Nash bargaining solution:
`alpha > 0` with `G alpha = 1 / alpha` (elementwise), G the Gram matrix of the
task gradients. That is the stationarity condition of the strictly convex
`f(alpha) = 1/2 alpha^T G alpha - sum_k log alpha_k`, which we minimise in JAX
by damped Newton steps (`iterations`, default 20, as the reference code's
20 CCP iterations), warm-started from the previous step's solution; no CPU
solver in the step. We solve it in the coordinates `beta = ||g|| * alpha`, where
it reads `beta_i (C beta)_i = 1` with C the cosine matrix of the gradients
(an exact change of variables, so the solution is the reference's), which
takes the gradients' scales out of the conditioning (the reference code
normalises G by its Frobenius norm and runs cvxpy's ECOS until
`||G alpha - 1/alpha|| < 1e-3`, a looser stop than ours). A ridge
(`regularization`) is added to C only where its least eigenvalue is below it
(gradients dependent to float32 precision), so a well-posed problem is solved
unchanged: random cases with least eigenvalue >= 1e-2 meet the bargaining
condition to 2e-6 (`tests/tools/solver_accuracy.py`). The update has norm sqrt(#tasks)
(the reference then clips the shared gradient to norm 1, which our
optimizer's `clip_norm=1.0` does for the whole gradient). Absent tasks get
alpha 0.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting.base import GradientAggregation, from_gram, present_mask, register


class NashState(NamedTuple):
  beta_k: jax.Array  # the last solution for the cosine matrix (0: none yet)


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
def nash_mtl(iterations: int = 20, regularization: float = 1e-6) -> GradientAggregation:
  """Nash-MTL (see module docstring).

  Args:
    iterations: damped Newton steps per training step.
    regularization: the least eigenvalue the cosine matrix of the gradients
      may have; a ridge lifts it there only where it is lower (nearly
      dependent gradients), so a well-posed problem is solved unchanged.
  """

  def init(num_tasks):
    return NashState(jnp.zeros((num_tasks,), jnp.float32))

  def weigh(gram_kk, state, **extras):
    num_tasks = gram_kk.shape[0]
    active_k = (present_mask(extras, num_tasks) > 0) & (jnp.diagonal(gram_kk) > 0)
    active_kk = active_k[:, None] & active_k[None, :]
    norms_k = jnp.where(active_k, jnp.sqrt(jnp.maximum(jnp.diagonal(gram_kk), 1e-30)), 1.0)
    # alpha_i (G alpha)_i = 1 is beta_i (C beta)_i = 1 with beta = norms * alpha and
    # C the cosine matrix: the gradients' scales leave the problem's conditioning.
    # Inactive tasks decouple (identity rows) and are zeroed afterwards.
    cosine_kk = jnp.where(active_kk, gram_kk / (norms_k[:, None] * norms_k[None, :]),
                          jnp.eye(num_tasks))
    least = jnp.linalg.eigvalsh(cosine_kk)[0]
    cosine_kk = cosine_kk + jnp.maximum(regularization - least, 0.0) * jnp.eye(num_tasks)
    start_k = jnp.where(active_k & (state.beta_k > 0), state.beta_k, 1.0)  # 1: orthogonal
    beta_k = nash_solve(cosine_kk, start_k, iterations)
    new_state = NashState(jnp.where(active_k, beta_k, state.beta_k))
    return jnp.where(active_k, beta_k / norms_k, 0.0), new_state

  return from_gram(init, weigh)

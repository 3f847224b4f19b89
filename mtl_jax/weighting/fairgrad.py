"""FairGrad (Ban & Ji, ICML 2024, "Fair Resource Allocation in Multi-Task
Learning"; torchjd's FairGrad).

The update is `J^T x` with `x > 0` solving `G x = x^(-1/alpha)`: each task's
share of the improvement follows alpha-fair utility maximisation (alpha = 1
is Nash-MTL's bargaining condition, alpha -> 0 the plain mean, larger alpha
favours the worst-off task). The reference solves it with
`scipy.optimize.least_squares` from the uniform point; here it is the
minimiser of the convex `1/2 x^T G x - sum_i phi(x_i)` (phi' = x^(-1/alpha)),
found by Newton steps with a backtracking line search that keeps x > 0,
stopped when every task's residual is below `tolerance` of its side. It is
solved in Nash-MTL's coordinates `beta = ||g|| x` (see `fairgrad_solve`), so
the gradients' scales do not condition it.
Absent and zero-gradient tasks get weight 0.
"""

from __future__ import annotations

import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import from_gram, init_empty, present_mask, register


def fairgrad_solve(cosine_kk, scale_k, active_k, alpha: float, tolerance: float,
                   max_iterations: int):
  """beta > 0 with `(C beta)_i = s_i beta_i^(-1/alpha)` on the active tasks.

  With `G = D C D` (D the gradients' norms), `x = beta / D` solves FairGrad's
  `G x = x^(-1/alpha)` for `s = D^(1/alpha - 1)`: the linear part is the
  cosine matrix, whatever the gradients' scales (Nash-MTL's change of
  variables; alpha = 1 is Nash-MTL's condition). Inactive tasks decouple
  (identity rows) and keep beta = 1.

  Returns:
    (beta_k, converged).
  """
  k = cosine_kk.shape[0]
  active_kk = active_k[:, None] & active_k[None, :]
  c_kk = jnp.where(active_kk, cosine_kk, jnp.eye(k))
  s_k = jnp.where(active_k, scale_k, 1.0)
  power = -1.0 / alpha

  def phi(b_k):  # sum of s_i times the antiderivative of b^(-1/alpha)
    if alpha == 1.0:
      return jnp.sum(s_k * jnp.log(b_k))
    return jnp.sum(s_k * b_k ** (1.0 + power)) / (1.0 + power)

  def objective(b_k):
    return 0.5 * b_k @ c_kk @ b_k - phi(b_k)

  def residual(b_k):  # each task's, relative to its side s_i b_i^(-1/alpha)
    target_k = s_k * b_k ** power
    return jnp.max(jnp.abs(c_kk @ b_k - target_k) / target_k)

  def body(carry):
    b_k, _ = carry
    grad_k = c_kk @ b_k - s_k * b_k ** power
    hessian_kk = c_kk + jnp.diag((-power) * s_k * b_k ** (power - 1.0))
    delta_k = jnp.linalg.solve(hessian_kk, grad_k)
    # The longest step inside b > 0 (with a margin), then halve until f decreases
    # by Armijo's condition (a Newton direction is a descent direction here).
    ratio_k = jnp.where(delta_k > 0, b_k / jnp.where(delta_k > 0, delta_k, 1.0), jnp.inf)
    step = jnp.minimum(1.0, 0.99 * jnp.min(ratio_k))
    f0, slope = objective(b_k), -grad_k @ delta_k

    def short_enough(t):
      return objective(b_k - t * delta_k) <= f0 + 1e-4 * t * slope

    step = linalg.iterate_until_done(
        lambda c: (c[0] * 0.5, short_enough(c[0] * 0.5)), (step, short_enough(step)), 50)[0]
    new_b = b_k - step * delta_k
    return new_b, residual(new_b) <= tolerance

  start = jnp.ones((k,), jnp.float32)
  return linalg.iterate_until_done(body, (start, residual(start) <= tolerance), max_iterations)


@register("fairgrad")
def fairgrad(alpha: float = 1.0, tolerance: float = 1e-6, max_iterations: int = 100):
  """FairGrad (see module docstring).

  Args:
    alpha: the fairness level (the paper's experiments use 1.0 and 2.0;
      0: the mean).
    tolerance: the relative residual that stops the solve.
    max_iterations: a cap on the Newton steps.

  Raises:
    ValueError: a negative `alpha`.
  """
  if alpha < 0:
    raise ValueError(f"fairgrad: alpha must be >= 0, got {alpha}")

  def weigh(gram_kk, state, **extras):
    present_k = present_mask(extras, gram_kk.shape[0])
    if alpha == 0:
      return linalg.uniform(present_k), state
    active_k = (present_k > 0) & (jnp.diagonal(gram_kk) > 0)
    # Norms relative to the largest (the solution scales back exactly).
    norms_k = jnp.where(active_k, jnp.sqrt(jnp.maximum(jnp.diagonal(gram_kk), 1e-30)), 1.0)
    top = jnp.max(jnp.where(active_k, norms_k, 0.0))
    unit_k = norms_k / jnp.maximum(top, 1e-30)
    cosine_kk = gram_kk / (norms_k[:, None] * norms_k[None, :])
    beta_k, _ = fairgrad_solve(cosine_kk, unit_k ** (1.0 / alpha - 1.0), active_k, alpha,
                               tolerance, max_iterations)
    # x for G/top^2 is beta / unit; for G it scales by top^(-2 alpha / (1 + alpha)).
    x_k = beta_k / unit_k * jnp.maximum(top, 1e-30) ** (-2.0 * alpha / (1.0 + alpha))
    return jnp.where(active_k, x_k, 0.0), state

  return from_gram(init_empty, weigh)

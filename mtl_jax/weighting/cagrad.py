"""CAGrad (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021, "Conflict-Averse Gradient
Descent for Multi-task Learning").

The update maximises the worst task improvement within a ball around the
average gradient g0: `d = g0 + (c ||g0|| / ||g_w||) g_w` with `g_w = sum_k w_k g_k`
and `w = argmin_{w in simplex} g_w^T g0 + c ||g0|| ||g_w||`, then divided by
`1 + c^2` (`rescale=1`, the reference default; 0: no rescaling, 2: divide by
`1 + c`; torchjd does not rescale, so ours = theirs / (1 + c^2)). Default c = 0.4 (the paper's
NYUv2 and reference-code setting). Over the present tasks.

The inner problem is solved exactly in JAX (the reference code uses scipy's
SLSQP, torchjd cvxpy's Clarabel): as `r ||x|| = min_{t > 0} r (||x||^2 / t + t) / 2`,
for a fixed t it is a quadratic on the simplex (`linalg.min_norm_simplex` with
a linear term, exact), and the optimal t is the one with `t = ||g_w(t)||`, found
by bisection on log t until `|t - ||g_w(t)||| <= tolerance * t` (the
condition's residual; at most `max_bisections`). Projected gradient, our
earlier solver, left up to 1e-2 of the update when two gradients nearly cancel.
"""

from __future__ import annotations

import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import (GradientAggregation, from_gram, init_empty,
                                    present_mask, register)


def cagrad_inner(gram_kk, mean_k, radius, present_k, tolerance: float, max_bisections: int):
  """`argmin_{w in simplex} w^T G mean + radius ||g_w||` (see the module docstring);
  G scaled to trace 1 over the present tasks.

  Returns:
    (w_k, ||g_w||, converged): the minimiser, its norm, and whether the
    bisection's residual test (not the cap) stopped it.
  """
  linear_k = gram_kk @ mean_k

  def solve(t):  # the quadratic for a fixed t, and ||g_w|| at its minimiser
    w_k = linalg.min_norm_simplex((radius / t) * gram_kk, present_k, linear_k=linear_k)
    return w_k, jnp.sqrt(jnp.maximum(w_k @ gram_kk @ w_k, 0.0))

  def bisect(carry):
    low, high, _ = carry
    t = jnp.sqrt(low * high)
    _, norm = solve(t)
    # Past the optimal t the minimiser's norm falls below t.
    return (jnp.where(norm < t, low, t), jnp.where(norm < t, t, high),
            jnp.abs(t - norm) <= tolerance * t)

  # ||g_w|| is at most the longest gradient; below 1e-6 of it, g_w counts as 0.
  high = jnp.sqrt(jnp.max(jnp.where(present_k > 0, jnp.diagonal(gram_kk), 0.0))) + 1e-12
  low, high, converged = linalg.iterate_until_done(
      bisect, (1e-6 * high, high, jnp.bool_(False)), max_bisections)
  return (*solve(jnp.sqrt(low * high)), converged)


@register("cagrad")
def cagrad(c: float = 0.4, rescale: int = 1, tolerance: float = 1e-6,
           max_bisections: int = 60) -> GradientAggregation:
  """CAGrad (see module docstring).

  Args:
    c: the radius of the ball around the average gradient, relative to its norm.
    rescale: 0, 1 (divide by 1 + c^2) or 2 (divide by 1 + c).
    tolerance: the relative residual of `t = ||g_w||` that ends the bisection.
    max_bisections: a cap on the bisection steps (tests show it is not reached).
  """
  if rescale not in (0, 1, 2):
    raise ValueError(f"cagrad: rescale must be 0, 1 or 2, got {rescale}")
  if c < 0:
    raise ValueError(f"cagrad: c must be non-negative, got {c}")

  def weigh(gram_kk, state, **extras):
    present_k = present_mask(extras, gram_kk.shape[0])
    mean_k = linalg.uniform(present_k)  # g0 = sum_k mean_k g_k
    if c == 0:  # no ball: the mean
      return mean_k * present_k, state
    # The solution is invariant to the scale of the Gram matrix; normalising
    # it keeps the inner problem well conditioned.
    scaled_kk = gram_kk / jnp.maximum(jnp.trace(gram_kk * present_k[:, None]), 1e-30)
    radius = c * jnp.sqrt(mean_k @ scaled_kk @ mean_k + 1e-12)
    w_k, norm, _ = cagrad_inner(scaled_kk, mean_k, radius, present_k, tolerance, max_bisections)
    step = radius / jnp.maximum(norm, 1e-6)
    coeffs_k = mean_k + step * w_k
    if rescale == 1:
      coeffs_k = coeffs_k / (1.0 + c ** 2)
    elif rescale == 2:
      coeffs_k = coeffs_k / (1.0 + c)
    return coeffs_k * present_k, state

  return from_gram(init_empty, weigh)

"""CAGrad (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021, "Conflict-Averse Gradient
Descent for Multi-task Learning").

The update maximises the worst task improvement within a ball around the
average gradient g0: `d = g0 + (c ||g0|| / ||g_w||) g_w` with `g_w = sum_k w_k g_k`
and `w = argmin_{w in simplex} g_w^T g0 + c ||g0|| ||g_w||` (solved in JAX by
projected gradient, `linalg.minimize_on_simplex`, instead of the reference
code's scipy SLSQP), then divided by `1 + c^2` (`rescale=1`, the reference
default; 0: no rescaling, 2: divide by `1 + c`). Default c = 0.4 (the paper's
NYUv2 and reference-code setting). Over the present tasks.
"""

from __future__ import annotations

import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import (GradientAggregation, from_gram, init_empty,
                                    present_mask, register)


@register("cagrad")
def cagrad(c: float = 0.4, rescale: int = 1, iterations: int = 200
           ) -> GradientAggregation:
  """CAGrad (see module docstring).

  Args:
    c: the radius of the ball around the average gradient, relative to its norm.
    rescale: 0, 1 (divide by 1 + c^2) or 2 (divide by 1 + c).
    iterations: projected-gradient steps of the inner problem.
  """
  if rescale not in (0, 1, 2):
    raise ValueError(f"cagrad: rescale must be 0, 1 or 2, got {rescale}")
  if c < 0:
    raise ValueError(f"cagrad: c must be non-negative, got {c}")

  def weigh(gram_kk, state, **extras):
    present_k = present_mask(extras, gram_kk.shape[0])
    mean_k = linalg.uniform(present_k)  # g0 = sum_k mean_k g_k
    # The solution is invariant to the scale of the Gram matrix; normalising
    # it keeps the inner problem well conditioned.
    scaled_kk = gram_kk / jnp.maximum(jnp.trace(gram_kk * present_k[:, None]), 1e-30)
    radius = c * jnp.sqrt(mean_k @ scaled_kk @ mean_k + 1e-12)

    def objective(w_k):
      return w_k @ scaled_kk @ mean_k + radius * jnp.sqrt(w_k @ scaled_kk @ w_k + 1e-12)

    w_k = linalg.minimize_on_simplex(objective, mean_k, present_k, iterations=iterations)
    step = radius / jnp.sqrt(w_k @ scaled_kk @ w_k + 1e-12)
    coeffs_k = mean_k + step * w_k
    if rescale == 1:
      coeffs_k = coeffs_k / (1.0 + c ** 2)
    elif rescale == 2:
      coeffs_k = coeffs_k / (1.0 + c)
    return coeffs_k * present_k, state

  return from_gram(init_empty, weigh)

"""MGDA (Désidéri 2012; Sener & Koltun, NeurIPS 2018, "Multi-Task Learning as
Multi-Objective Optimization") and its upper bound MGDA-UB.

The update is the min-norm point of the convex hull of the task gradients,
`sum_k w_k g_k` with `w = argmin_{w in simplex} ||sum_k w_k g_k||^2`, solved
exactly by an active-set method on the Gram matrix (`linalg.min_norm_simplex`;
the paper's Frank-Wolfe solver is exact for two tasks only, and for more stops
away from the point). Optionally the
gradients are normalised before solving, as in the paper's code
(`normalization`: 'none' (default, the paper's algorithm), 'l2', 'loss',
'loss+'); the weights then multiply the raw gradients, as there.

MGDA-UB (`mgda_ub`) is the same solver on the gradients at the shared
representation (the paper's min-norm problem on Z): it runs in
`gradient_mode='representation'` only.
"""

from __future__ import annotations

import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import (GradientAggregation, from_gram, init_empty,
                                    present_mask, register)

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def _mgda(normalization: str, **modes) -> GradientAggregation:
  if normalization not in NORMALIZATIONS:
    raise ValueError(f"mgda: unknown normalization {normalization!r}; use one of "
                     f"{', '.join(NORMALIZATIONS)}")

  def weigh(gram_kk, state, **extras):
    num_tasks = gram_kk.shape[0]
    present_k = present_mask(extras, num_tasks)
    norms_k = linalg.norms_from_gram(gram_kk)
    if normalization == "none":
      scales_k = jnp.ones_like(norms_k)
    elif normalization == "l2":
      scales_k = norms_k
    else:
      losses_k = extras.get("losses_k")
      if losses_k is None:
        raise ValueError(f"mgda(normalization={normalization!r}) needs losses_k=")
      scales_k = losses_k.astype(jnp.float32)
      if normalization == "loss+":
        scales_k = scales_k * norms_k
    scales_k = jnp.where(scales_k > 0, scales_k, 1.0)
    weights_k = linalg.min_norm_simplex(gram_kk / (scales_k[:, None] * scales_k[None, :]),
                                        present_k)
    return weights_k, state

  return from_gram(init_empty, weigh, **modes)


@register("mgda")
def mgda(normalization: str = "none") -> GradientAggregation:
  """MGDA (see module docstring).

  Args:
    normalization: 'none', 'l2', 'loss' or 'loss+'.
  """
  return _mgda(normalization)


@register("mgda_ub")
def mgda_ub(normalization: str = "none") -> GradientAggregation:
  """MGDA-UB: MGDA on the shared representation's gradients (see module docstring)."""
  return _mgda(normalization, gradient_mode="representation", modes=("representation",))

"""Aligned-MTL (Senushkin, Patakin, Kuznetsov & Konushin, CVPR 2023,
"Independent Component Alignment for Multi-Task Learning").

Aligns the task gradients to an orthogonal system with equal magnitudes, the
condition number of the gradient matrix made 1: with the Gram matrix
`G = V L V^T` (its rank-r part), `B = sqrt(l_min) V L^(-1/2) V^T` and the
update `sum_k (B 1)_k g_k`, as the reference code (scale mode 'min', equal
preference weights). No hyper-parameters; absent tasks leave the
decomposition.
"""

from __future__ import annotations

import jax.numpy as jnp

from mtl_jax.weighting.base import (GradientAggregation, from_gram, init_empty,
                                    present_mask, register)


@register("aligned_mtl")
def aligned_mtl() -> GradientAggregation:
  """Aligned-MTL (see module docstring)."""

  def weigh(gram_kk, state, **extras):
    num_tasks = gram_kk.shape[0]
    present_k = present_mask(extras, num_tasks)
    gram_kk = gram_kk * present_k[:, None] * present_k[None, :]
    # B is invariant to the scale of G; normalising keeps eigh well conditioned.
    gram_kk = gram_kk / jnp.maximum(jnp.trace(gram_kk), 1e-30)
    eigenvalues_k, eigenvectors_kk = jnp.linalg.eigh(gram_kk)
    tolerance = jnp.max(eigenvalues_k) * num_tasks * jnp.finfo(jnp.float32).eps
    kept_k = eigenvalues_k > tolerance
    smallest = jnp.min(jnp.where(kept_k, eigenvalues_k, jnp.inf))
    inverse_roots_k = jnp.where(kept_k, 1.0 / jnp.sqrt(jnp.where(kept_k, eigenvalues_k, 1.0)),
                                0.0)
    align_kk = jnp.sqrt(jnp.where(jnp.any(kept_k), smallest, 0.0)) * (
        (eigenvectors_kk * inverse_roots_k[None, :]) @ eigenvectors_kk.T)
    return (align_kk @ present_k) * present_k, state

  return from_gram(init_empty, weigh)

"""Diagnostics of per-task gradients (how tasks agree), for reports, not for updates."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def gradient_cosines(grads_k: Any) -> jax.Array:
  """Pairwise cosine similarity of the task gradients.

  Args:
    grads_k: a pytree whose every leaf has a leading task axis k (task i's
      gradient is the pytree of the leaves' i-th slices).

  Returns:
    [k, k] float32: `cos(g_i, g_j)` over all leaves together; 0 where a
    gradient is zero.
  """
  leaves = [g.reshape(g.shape[0], -1).astype(jnp.float32) for g in jax.tree.leaves(grads_k)]
  dots_kk = sum(jnp.einsum("ip,jp->ij", g, g, precision=jax.lax.Precision.HIGHEST)
                for g in leaves)
  norms_k = jnp.sqrt(jnp.diagonal(dots_kk))
  scale_kk = norms_k[:, None] * norms_k[None, :]
  return jnp.where(scale_kk > 0, dots_kk / jnp.where(scale_kk > 0, scale_kk, 1.0), 0.0)

"""ConFIG (Liu, Chu & Thuerey, ICLR 2025, "ConFIG: Towards
Conflict-free Training of Physics Informed Neural Networks"; torchjd's ConFIG).

The direction `d = pinv(U) 1` solves `u_i . d = 1` for the unit task
gradients `u_i = g_i / ||g_i||` (equal, positive projections on every task:
no conflict), least-norm where that has many solutions; the update is
`d / ||d||` scaled to `sum_j g_j . d / ||d||`. All of it comes from the Gram
matrix: with C the cosine matrix, `d = sum_i (C^+ 1)_i u_i` and
`||d||^2 = 1^T C^+ 1`, so the coefficients of the task gradients are
`length * (C^+ 1)_i / (||g_i|| ||d||)`. C^+ is the eigendecomposition
pseudo-inverse, cutting eigenvalues below `rtol^2` of the largest (torch's
`pinv` cuts singular values of U below `rtol` of the largest, `rtol` =
float32's epsilon times the number of tasks). Zero and absent gradients get
coefficient 0 (torchjd: `nan_to_num` of their unit vector).
"""

from __future__ import annotations

import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import from_gram, init_empty, present_mask, register


@register("config")
def config(rtol: float | None = None):
  """ConFIG with the sum as preference (see module docstring).

  Args:
    rtol: the pseudo-inverse's relative cut-off on U's singular values
      (default: float32's epsilon times the number of tasks, as torch's `pinv`).
  """

  def weigh(gram_kk, state, **extras):
    num_tasks = gram_kk.shape[0]
    present_k = present_mask(extras, num_tasks)
    norms_k = linalg.norms_from_gram(gram_kk)
    nonzero_k = jnp.where(norms_k > 0, present_k, 0.0)
    inverse_k = nonzero_k / jnp.maximum(norms_k, 1e-30)
    cosines_kk = gram_kk * inverse_k[:, None] * inverse_k[None, :]
    eigenvalues_k, vectors_kk = jnp.linalg.eigh(cosines_kk)
    cutoff = (rtol if rtol is not None else jnp.finfo(jnp.float32).eps * num_tasks) ** 2
    keep_k = eigenvalues_k > cutoff * jnp.max(eigenvalues_k)
    inverse_eigenvalues_k = jnp.where(keep_k, 1.0 / jnp.where(keep_k, eigenvalues_k, 1.0), 0.0)
    # a = C^+ 1 over every task, as torchjd's preference (zero rows are cut by C^+).
    a_k = vectors_kk @ (inverse_eigenvalues_k * (vectors_kk.T @ jnp.ones((num_tasks,))))
    d_norm = jnp.sqrt(jnp.maximum(jnp.sum(a_k), 0.0))
    # g_j . d = (G diag(1/||g||) a)_j; the update's length is sum_j g_j . d / ||d||.
    direction_k = a_k * inverse_k  # d = sum_i direction_i g_i
    length = jnp.sum(gram_kk @ direction_k) / jnp.maximum(d_norm, 1e-30)
    coeffs_k = length * direction_k / jnp.maximum(d_norm, 1e-30)
    return coeffs_k * nonzero_k, state

  return from_gram(init_empty, weigh)

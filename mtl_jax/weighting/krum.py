"""Krum (Blanchard, El Mhamdi, Guerraoui & Stainer, NeurIPS 2017, "Machine
Learning with Adversaries: Byzantine Tolerant Gradient Descent"; torchjd's Krum).

A robust aggregator: each task gradient is scored by the sum of its
distances to its `T - f - 2` nearest other gradients (f = `n_byzantine`, the
gradients assumed adversarial), and the update is the mean of the
`n_selected` best-scored gradients. Distances come from the Gram matrix
(`||g_i - g_j||^2 = G_ii + G_jj - 2 G_ij`). Absent tasks are neither scored
nor counted as neighbours; with fewer than `f + 3` tasks present the update
is the mean of the present ones.
"""

from __future__ import annotations

import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import from_gram, init_empty, present_mask, register


@register("krum")
def krum(num_tasks: int, n_byzantine: int = 0, n_selected: int = 1):
  """Krum (see module docstring).

  Args:
    num_tasks: the run's number of tasks (from the run).
    n_byzantine: f, how many gradients may be adversarial; needs
      `num_tasks >= f + 3`.
    n_selected: how many of the best-scored gradients are averaged.

  Raises:
    ValueError: too few tasks for `n_byzantine`, or `n_selected` out of range.
  """
  if n_byzantine < 0 or num_tasks < n_byzantine + 3:
    raise ValueError(f"krum: needs n_byzantine >= 0 and at least n_byzantine + 3 tasks; "
                     f"got n_byzantine={n_byzantine} with {num_tasks} tasks")
  if not 1 <= n_selected <= num_tasks:
    raise ValueError(f"krum: n_selected must be in [1, {num_tasks}], got {n_selected}")

  def weigh(gram_kk, state, **extras):
    k = gram_kk.shape[0]
    present_k = present_mask(extras, k)
    present = present_k > 0
    squares_k = jnp.diagonal(gram_kk)
    distances_kk = jnp.sqrt(jnp.maximum(squares_k[:, None] + squares_k[None, :]
                                        - 2.0 * gram_kk, 0.0))
    # Neighbours: the other present tasks, nearest first.
    neighbour_kk = present[None, :] & ~jnp.eye(k, dtype=bool)
    sorted_kk = jnp.sort(jnp.where(neighbour_kk, distances_kk, jnp.inf), axis=1)
    n_closest = jnp.sum(present_k) - n_byzantine - 2
    counted_k = jnp.arange(k, dtype=jnp.float32) < n_closest
    scores_k = jnp.sum(jnp.where(counted_k[None, :], sorted_kk, 0.0), axis=1)
    scores_k = jnp.where(present, scores_k, jnp.inf)
    # The n_selected best scores (ties: the lower index, as torch.topk's sort).
    ranks_k = jnp.argsort(jnp.argsort(scores_k, stable=True), stable=True)
    selected_k = (ranks_k < n_selected).astype(jnp.float32) * present_k
    coeffs_k = selected_k / jnp.maximum(jnp.sum(selected_k), 1.0)
    enough = n_closest >= 1
    return jnp.where(enough, coeffs_k, linalg.uniform(present_k)), state

  return from_gram(init_empty, weigh)

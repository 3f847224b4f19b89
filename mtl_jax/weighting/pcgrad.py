"""PCGrad (Yu, Kumar, Gupta, Levine, Hausman & Finn, NeurIPS 2020, "Gradient
Surgery for Multi-Task Learning").

For each task i, in a random order of the other tasks j: when
`<g_i^PC, g_j> < 0`, project `g_i^PC` onto the normal plane of (the original)
`g_j`; the update is the sum of the projected gradients. Every projected
gradient is a combination of the task gradients whose coefficients follow
from the Gram matrix alone, so PCGrad runs on [k, k] matrices. No
hyper-parameters; needs `rng` (the random orders). Absent tasks are neither
projected nor projected against.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.weighting.base import (GradientAggregation, from_gram, init_empty,
                                    present_mask, register, require_rng)


def pcgrad_coefficients(gram_kk, present_k, orders_kk):
  """Coefficients of `sum_i g_i^PC` in the task gradients.

  Args:
    gram_kk: Gram matrix of the task gradients.
    present_k: 1 for the tasks that take part.
    orders_kk: row i is the order in which task i visits the tasks (a
      permutation of 0..k-1; task i itself is skipped).

  Returns:
    [k] coefficients.
  """
  gram_kk = jnp.asarray(gram_kk, jnp.float32)
  num_tasks = gram_kk.shape[0]
  rows_k = jnp.arange(num_tasks)
  sq_norms_k = jnp.diagonal(gram_kk)

  def body(position, coeffs_kk):
    # coeffs_kk[i] holds g_i^PC = sum_m coeffs_kk[i, m] g_m.
    others_k = orders_kk[:, position]
    dots_k = jnp.einsum("im,mi->i", coeffs_kk, gram_kk[:, others_k])
    conflict_k = ((dots_k < 0) & (others_k != rows_k) & (present_k[others_k] > 0)
                  & (sq_norms_k[others_k] > 0))
    step_k = jnp.where(conflict_k, dots_k / jnp.where(conflict_k, sq_norms_k[others_k], 1.0),
                       0.0)
    return coeffs_kk.at[rows_k, others_k].add(-step_k)

  coeffs_kk = jax.lax.fori_loop(0, num_tasks, body, jnp.eye(num_tasks, dtype=jnp.float32))
  return jnp.sum(coeffs_kk * present_k[:, None], axis=0) * present_k


@register("pcgrad")
def pcgrad() -> GradientAggregation:
  """PCGrad (see module docstring)."""

  def weigh(gram_kk, state, **extras):
    num_tasks = gram_kk.shape[0]
    keys = jax.random.split(require_rng(extras, "pcgrad"), num_tasks)
    orders_kk = jax.vmap(lambda key: jax.random.permutation(key, num_tasks))(keys)
    return pcgrad_coefficients(gram_kk, present_mask(extras, num_tasks), orders_kk), state

  return from_gram(init_empty, weigh)

"""GradVac (Wang, Tsvetkov, Firat & Cao, ICLR 2021, "Gradient Vaccine:
Investigating and Improving Multi-task Optimization in Massively
Multilingual Models").

PCGrad generalised to a target similarity: each pair keeps an EMA target
`phi^_ij` of its cosine similarity (decay `beta`, the paper's 0.01, from 0);
for each task i, in a random order of the others, when the current
`phi_ij = cos(g_i', g_j) < phi^_ij`, `g_i'` gets `g_j` added with the weight
that raises the similarity to the target,
`||g_i'|| (phi^ sqrt(1 - phi^2) - phi sqrt(1 - phi^^2)) / (||g_j|| sqrt(1 - phi^^2))`,
then `phi^_ij <- (1 - beta) phi^_ij + beta phi_ij`. The update is `sum_i g_i'`.
Applied to the gradient as a whole (the paper also studies per-layer
targets). Needs `rng`; absent tasks are neither adjusted nor used, and their
targets do not move.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting.base import (GradientAggregation, from_gram, present_mask,
                                    register, require_rng)


class GradVacState(NamedTuple):
  targets_kk: jax.Array  # phi^_ij, the EMA of cos(g_i', g_j)


@register("gradvac")
def gradvac(beta: float = 0.01) -> GradientAggregation:
  """GradVac (see module docstring).

  Args:
    beta: the EMA rate of the target similarities.
  """

  def init(num_tasks):
    return GradVacState(jnp.zeros((num_tasks, num_tasks), jnp.float32))

  def weigh(gram_kk, state, **extras):
    gram_kk = jnp.asarray(gram_kk, jnp.float32)
    num_tasks = gram_kk.shape[0]
    present_k = present_mask(extras, num_tasks)
    keys = jax.random.split(require_rng(extras, "gradvac"), num_tasks)
    orders_kk = jax.vmap(lambda key: jax.random.permutation(key, num_tasks))(keys)
    rows_k = jnp.arange(num_tasks)
    norms_k = jnp.sqrt(jnp.maximum(jnp.diagonal(gram_kk), 0.0))

    def body(position, carry):
      coeffs_kk, targets_kk = carry
      others_k = orders_kk[:, position]
      dots_k = jnp.einsum("im,mi->i", coeffs_kk, gram_kk[:, others_k])
      own_norms_k = jnp.sqrt(jnp.maximum(
          jnp.einsum("im,mn,in->i", coeffs_kk, gram_kk, coeffs_kk), 0.0))
      other_norms_k = norms_k[others_k]
      valid_k = ((others_k != rows_k) & (present_k > 0) & (present_k[others_k] > 0)
                 & (own_norms_k > 0) & (other_norms_k > 0))
      cosines_k = jnp.where(valid_k, dots_k / jnp.where(valid_k, own_norms_k * other_norms_k,
                                                        1.0), 0.0)
      targets_k = targets_kk[rows_k, others_k]
      adjust_k = valid_k & (cosines_k < targets_k)
      root_target_k = jnp.sqrt(jnp.maximum(1.0 - targets_k ** 2, 1e-12))
      weight_k = own_norms_k * (targets_k * jnp.sqrt(jnp.maximum(1.0 - cosines_k ** 2, 0.0))
                                - cosines_k * root_target_k) / (
                                    jnp.where(valid_k, other_norms_k, 1.0) * root_target_k)
      coeffs_kk = coeffs_kk.at[rows_k, others_k].add(jnp.where(adjust_k, weight_k, 0.0))
      targets_kk = targets_kk.at[rows_k, others_k].set(
          jnp.where(valid_k, (1.0 - beta) * targets_k + beta * cosines_k, targets_k))
      return coeffs_kk, targets_kk

    coeffs_kk, targets_kk = jax.lax.fori_loop(
        0, num_tasks, body, (jnp.eye(num_tasks, dtype=jnp.float32), state.targets_kk))
    coeffs_k = jnp.sum(coeffs_kk * present_k[:, None], axis=0) * present_k
    return coeffs_k, GradVacState(targets_kk)

  return from_gram(init, weigh)

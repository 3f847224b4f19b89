"""UPGrad (Quinton & Rey, 2024, "Jacobian Descent for Multi-Objective
Optimization"; the torchjd library).

Each task gradient is projected onto the dual cone of all task gradients
(the directions that increase no loss), and the projections are averaged.
The projection of `g_i` is `J^T w_i` with `w_i = argmin_{v >= e_i} v^T G v`
(the paper's Proposition 1), a box-constrained QP on the Gram matrix that
we solve in JAX by projected coordinate descent (`sweeps` passes) instead
of torchjd's quadprog. As torchjd, G is normalised by its trace and
regularised with `1e-4 I`; the update is `J^T mean_i w_i`. Absent tasks are
left out of the mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.weighting.base import (GradientAggregation, from_gram, init_empty,
                                    present_mask, register)


def dual_cone_weights(gram_kk, lower_k, sweeps: int):
  """`argmin_{v >= lower} v^T G v` for positive definite G, by coordinate descent."""
  num_tasks = gram_kk.shape[0]

  def sweep(_, v_k):
    def coordinate(j, v_k):
      # Exact minimisation over v_j with the others fixed, then the bound.
      residual = gram_kk[j] @ v_k - gram_kk[j, j] * v_k[j]
      return v_k.at[j].set(jnp.maximum(lower_k[j], -residual / gram_kk[j, j]))
    return jax.lax.fori_loop(0, num_tasks, coordinate, v_k)

  return jax.lax.fori_loop(0, sweeps, sweep, lower_k)


@register("upgrad")
def upgrad(norm_eps: float = 1e-4, reg_eps: float = 1e-4, sweeps: int = 100
           ) -> GradientAggregation:
  """UPGrad with the mean as preference (see module docstring).

  Args:
    norm_eps: below this trace, the Gram matrix counts as zero (torchjd's).
    reg_eps: ridge added to the normalised Gram matrix (torchjd's).
    sweeps: coordinate-descent passes of each QP.
  """

  def weigh(gram_kk, state, **extras):
    num_tasks = gram_kk.shape[0]
    present_k = present_mask(extras, num_tasks)
    gram_kk = gram_kk * present_k[:, None] * present_k[None, :]
    trace = jnp.trace(gram_kk)
    gram_kk = jnp.where(trace < norm_eps, 0.0, gram_kk / jnp.maximum(trace, 1e-30))
    gram_kk = gram_kk + reg_eps * jnp.eye(num_tasks)
    preference_k = present_k / jnp.maximum(jnp.sum(present_k), 1.0)
    lowers_kk = jnp.diag(preference_k)
    weights_kk = jax.vmap(lambda lower_k: dual_cone_weights(gram_kk, lower_k, sweeps))(
        lowers_kk)
    return jnp.sum(weights_kk, axis=0) * present_k, state

  return from_gram(init_empty, weigh)

"""UPGrad (Quinton & Rey, 2024, "Jacobian Descent for Multi-Objective
Optimization"; the torchjd library).

Each task gradient is projected onto the dual cone of all task gradients
(the directions that increase no loss), and the projections are averaged.
The projection of `g_i` is `J^T w_i` with `w_i = argmin_{v >= e_i} v^T G v`
(the paper's Proposition 1), a bound-constrained QP on the Gram matrix that
we solve exactly in JAX by an active-set method (`linalg.min_quadratic_above`,
finitely many steps, stopped by its KKT test) instead of torchjd's quadprog.
As torchjd, G is normalised by its trace and regularised with `1e-4 I`; the
update is `J^T mean_i w_i`. Absent tasks are left out of the mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import (GradientAggregation, from_gram, init_empty,
                                    present_mask, register)


@register("upgrad")
def upgrad(norm_eps: float = 1e-4, reg_eps: float = 1e-4) -> GradientAggregation:
  """UPGrad with the mean as preference (see module docstring).

  Args:
    norm_eps: below this trace, the Gram matrix counts as zero (torchjd's).
    reg_eps: ridge added to the normalised Gram matrix (torchjd's).
  """

  def weigh(gram_kk, state, **extras):
    num_tasks = gram_kk.shape[0]
    present_k = present_mask(extras, num_tasks)
    gram_kk = linalg.trace_normalized(gram_kk, present_k, norm_eps, reg_eps)
    preference_k = present_k / jnp.maximum(jnp.sum(present_k), 1.0)
    lowers_kk = jnp.diag(preference_k)
    weights_kk, _ = jax.vmap(lambda lower_k: linalg.min_quadratic_above(gram_kk, lower_k))(
        lowers_kk)
    return jnp.sum(weights_kk, axis=0) * present_k, state

  return from_gram(init_empty, weigh)

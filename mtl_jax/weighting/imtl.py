"""IMTL-G (Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, ICLR 2021, "Towards
Impartial Multi-task Learning"), the gradient half of IMTL.

The update `g = sum_k alpha_k g_k` with `sum_k alpha_k = 1` has equal projections
on every task's unit gradient `u_k = g_k / ||g_k||`: `<g, u_i> = <g, u_j>`. This
is the paper's closed form `alpha_2: = g_1 U^T (D U^T)^-1` written as one
(k+1)-square linear system in the Gram matrix (unknowns alpha and the common
projection), solved by pseudo-inverse so collinear gradients do not break
it. No hyper-parameters. Absent tasks, and tasks with a zero gradient, get
alpha 0.
"""

from __future__ import annotations

import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import (GradientAggregation, from_gram, init_empty,
                                    present_mask, register)


@register("imtl_g")
def imtl_g() -> GradientAggregation:
  """IMTL-G (see module docstring)."""

  def weigh(gram_kk, state, **extras):
    num_tasks = gram_kk.shape[0]
    norms_k = linalg.norms_from_gram(gram_kk)
    active_k = (present_mask(extras, num_tasks) > 0) & (norms_k > 0)
    inverse_norms_k = jnp.where(active_k, 1.0 / jnp.where(active_k, norms_k, 1.0), 0.0)
    # Rows i (active): sum_s <g_i, g_s> / ||g_i|| alpha_s - t = 0; inactive: alpha_i = 0;
    # last row: sum_s alpha_s = 1.
    projections_kk = jnp.where(active_k[:, None], gram_kk * inverse_norms_k[:, None],
                               jnp.eye(num_tasks))
    system = jnp.zeros((num_tasks + 1, num_tasks + 1), jnp.float32)
    system = system.at[:num_tasks, :num_tasks].set(projections_kk)
    system = system.at[:num_tasks, num_tasks].set(jnp.where(active_k, -1.0, 0.0))
    system = system.at[num_tasks, :num_tasks].set(active_k.astype(jnp.float32))
    target = jnp.zeros((num_tasks + 1,), jnp.float32).at[num_tasks].set(1.0)
    # Scale-free system (the Gram matrix's scale would set pinv's cut-off).
    scale = jnp.maximum(jnp.max(norms_k), 1e-30)
    system = system.at[:num_tasks, :num_tasks].divide(
        jnp.where(active_k[:, None], scale, 1.0))
    system = system.at[:num_tasks, num_tasks].divide(scale)
    solution = jnp.linalg.pinv(system) @ target
    return jnp.where(active_k, solution[:num_tasks], 0.0), state

  return from_gram(init_empty, weigh)

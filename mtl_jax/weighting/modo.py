"""MoDo (Chen, Fernando, Ying & Chen, JMLR 2024, "Three-Way Trade-Off in
Multi-Objective Learning: Optimization, Generalization and Conflict-Avoidance";
torchjd's MoDoWeighting).

The task weights follow one projected gradient step per training step on
the min-norm objective: `lambda <- Proj_simplex(lambda - gamma (A lambda +
rho lambda))`, and the update is `J^T lambda`. The paper takes `A = J_1 J_2^T`
from two independent mini-batches (an unbiased estimate of the Gram matrix);
this library's step draws one batch per task, so `A` is that batch's Gram
matrix `J J^T` (what torchjd's weighting computes when handed it; its
stochastic guarantee needs the two batches). Absent tasks get weight 0 and
the projection runs over the present ones.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import from_gram, present_mask, register


class MoDoState(NamedTuple):
  lambda_k: jax.Array  # the task weights, on the simplex


@register("modo")
def modo(gamma: float = 0.1, rho: float = 0.1):
  """MoDo (see module docstring).

  Args:
    gamma: the step size of the weights' update (torchjd's default).
    rho: the l2 regularisation of the weights (torchjd's default).

  Raises:
    ValueError: a non-positive `gamma` or a negative `rho`.
  """
  if gamma <= 0 or rho < 0:
    raise ValueError(f"modo: needs gamma > 0 and rho >= 0, got gamma={gamma}, rho={rho}")

  def init(num_tasks):
    return MoDoState(jnp.full((num_tasks,), 1.0 / num_tasks, jnp.float32))

  def weigh(gram_kk, state, **extras):
    present_k = present_mask(extras, gram_kk.shape[0])
    # Onto the present tasks' simplex first (an absent task's weight is theirs).
    lambda_k = linalg.project_simplex(state.lambda_k * present_k, present_k)
    step_k = gram_kk @ lambda_k + rho * lambda_k
    lambda_k = linalg.project_simplex(lambda_k - gamma * step_k, present_k)
    # An absent task keeps its weight for when it is back.
    return lambda_k, MoDoState(jnp.where(present_k > 0, lambda_k, state.lambda_k))

  return from_gram(init, weigh)

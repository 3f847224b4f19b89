"""SDMGrad (Xiao, Ban & Ji, NeurIPS 2023, "Direction-oriented Multi-objective
Learning: Simple and Provable Stochastic Algorithms"; torchjd's SDMGradWeighting).

The weights w minimise `||J^T (w + lambda w~)||^2` over the simplex (w~ the
mean's weights: the direction is pulled towards the average gradient), by
`n_iter` steps of projected SGD with momentum, warm-started from the last
step's w; the update is `J^T (w + lambda w~) / (1 + lambda)`. Before the
solve, the matrix is divided by the square of the mean gradient norm (the
official code's scale normalisation). At the default lr the inner
iteration does not converge but bounces between the simplex's faces (as in
the reference: 20 and 21 iterations can give weights far apart), so its
output is sensitive to rounding. The paper takes `J_1 J_2^T` from two
independent mini-batches; this library's step has one batch per task, so
it is the batch's Gram matrix (see `modo` for the same caveat). Absent tasks
get weight 0.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import from_gram, present_mask, register


class SDMGradState(NamedTuple):
  w_k: jax.Array  # the last solution, on the simplex


@register("sdmgrad")
def sdmgrad(lr: float = 10.0, momentum: float = 0.5, n_iter: int = 20, lambda_: float = 0.3):
  """SDMGrad (see module docstring; defaults: torchjd's and the paper's experiments).

  Args:
    lr: the inner SGD's learning rate.
    momentum: the inner SGD's momentum, in [0, 1).
    n_iter: inner SGD iterations per training step.
    lambda_: how strongly the direction is pulled towards the average gradient.

  Raises:
    ValueError: an argument out of its range.
  """
  if lr <= 0 or not 0 <= momentum < 1 or n_iter < 1 or lambda_ < 0:
    raise ValueError(f"sdmgrad: needs lr > 0, 0 <= momentum < 1, n_iter >= 1, lambda_ >= 0; "
                     f"got {lr}, {momentum}, {n_iter}, {lambda_}")

  def init(num_tasks):
    return SDMGradState(jnp.full((num_tasks,), 1.0 / num_tasks, jnp.float32))

  def weigh(gram_kk, state, **extras):
    present_k = present_mask(extras, gram_kk.shape[0])
    target_k = linalg.uniform(present_k)
    scale = jnp.sum(jnp.sqrt(jnp.maximum(jnp.diagonal(gram_kk), 0.0)) * present_k) / (
        jnp.maximum(jnp.sum(present_k), 1.0))
    a_kk = gram_kk / (scale ** 2 + 1e-8)

    def inner(i, carry):
      w_k, velocity_k = carry
      grad_k = a_kk @ (w_k + lambda_ * target_k)
      # The first iteration starts the velocity (torchjd: `velocity is None`).
      velocity_k = jnp.where(i == 0, grad_k, momentum * velocity_k + grad_k)
      return linalg.project_simplex(w_k - lr * velocity_k, present_k), velocity_k

    start_k = linalg.project_simplex(state.w_k * present_k, present_k)
    w_k, _ = jax.lax.fori_loop(0, n_iter, inner, (start_k, jnp.zeros_like(start_k)))
    coeffs_k = (w_k + lambda_ * target_k) / (1.0 + lambda_)
    return coeffs_k, SDMGradState(jnp.where(present_k > 0, w_k, state.w_k))

  return from_gram(init, weigh)

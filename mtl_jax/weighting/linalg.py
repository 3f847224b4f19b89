"""Linear algebra over per-task gradients, shared by the balancing methods.

Per-task gradients are a pytree whose leaves have a leading task axis k
(`grads_k`). Every aggregation method here except GradDrop reads them only
through their Gram matrix `gram_kk[i, j] = <g_i, g_j>` and returns
coefficients `coeffs_k` of the update `sum_k coeffs_k g_k`, so the [k, k]
problems below (min-norm point, simplex projection, small QPs) are all they
solve, in float32, inside the jitted step.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

_HIGHEST = jax.lax.Precision.HIGHEST


def gram(grads_k: Any) -> jax.Array:
  """[k, k] float32 Gram matrix of per-task gradients (sum over every leaf)."""
  leaves = jax.tree.leaves(grads_k)
  if not leaves:
    raise ValueError("gram: the per-task gradients are an empty pytree")
  num_tasks = leaves[0].shape[0]
  total_kk = jnp.zeros((num_tasks, num_tasks), jnp.float32)
  for leaf in leaves:
    flat_kp = leaf.reshape(num_tasks, -1)
    total_kk += jnp.einsum("kp,jp->kj", flat_kp, flat_kp, precision=_HIGHEST,
                           preferred_element_type=jnp.float32)
  return total_kk


def combine(coeffs_k: jax.Array, grads_k: Any) -> Any:
  """`sum_k coeffs_k[k] * grads_k[k]`, leaf by leaf, in each leaf's dtype."""

  def one(leaf):
    summed = jnp.tensordot(coeffs_k.astype(jnp.float32), leaf.astype(jnp.float32),
                           axes=1, precision=_HIGHEST)
    return summed.astype(leaf.dtype)

  return jax.tree.map(one, grads_k)


def norms(grads_k: Any) -> jax.Array:
  """[k] L2 norm of each task's gradient (cheaper than the Gram diagonal)."""
  squares = [jnp.sum(jnp.square(leaf.astype(jnp.float32)).reshape(leaf.shape[0], -1), axis=1)
             for leaf in jax.tree.leaves(grads_k)]
  return jnp.sqrt(sum(squares))


def mask_tasks(grads_k: Any, mask_k: jax.Array) -> Any:
  """Zeroes the task slices where `mask_k` is 0 (absent tasks' gradients)."""
  return jax.tree.map(
      lambda leaf: leaf * mask_k.astype(leaf.dtype).reshape((-1,) + (1,) * (leaf.ndim - 1)),
      grads_k)


def norms_from_gram(gram_kk: jax.Array) -> jax.Array:
  """[k] gradient norms: the square roots of the Gram diagonal."""
  return jnp.sqrt(jnp.maximum(jnp.diagonal(gram_kk), 0.0))


def cosines_from_gram(gram_kk: jax.Array) -> jax.Array:
  """[k, k] pairwise cosine similarities; 0 in rows/columns of zero gradients."""
  norms_k = norms_from_gram(gram_kk)
  outer_kk = norms_k[:, None] * norms_k[None, :]
  return jnp.where(outer_kk > 0, gram_kk / jnp.where(outer_kk > 0, outer_kk, 1.0), 0.0)


def masked_mean(values_k: jax.Array, mask_k: jax.Array) -> jax.Array:
  """Mean over the entries where `mask_k` is 1 (0 when none is)."""
  return jnp.sum(values_k * mask_k) / jnp.maximum(jnp.sum(mask_k), 1.0)


def uniform(mask_k: jax.Array) -> jax.Array:
  """The uniform point of the simplex over the masked tasks."""
  return mask_k / jnp.maximum(jnp.sum(mask_k), 1.0)


def project_simplex(x_k: jax.Array, mask_k: jax.Array) -> jax.Array:
  """Euclidean projection onto {w >= 0, sum w = 1, w = 0 where mask is 0}.

  The sort-based algorithm (Held et al.; Duchi et al. 2008), with masked
  entries pushed so low that they never enter the support.
  """
  big = 1e9
  x_k = jnp.where(mask_k > 0, x_k, -big)
  sorted_k = jnp.sort(x_k)[::-1]
  cumsum_k = jnp.cumsum(sorted_k)
  index_k = jnp.arange(1, x_k.shape[0] + 1, dtype=x_k.dtype)
  support_k = sorted_k - (cumsum_k - 1.0) / index_k > 0
  rank = jnp.maximum(jnp.sum(support_k), 1)
  threshold = (cumsum_k[rank - 1] - 1.0) / rank.astype(x_k.dtype)
  return jnp.where(mask_k > 0, jnp.maximum(x_k - threshold, 0.0), 0.0)


def minimize_on_simplex(objective: Callable[[jax.Array], jax.Array], start_k: jax.Array,
                        mask_k: jax.Array, *, iterations: int = 200) -> jax.Array:
  """Minimises a smooth convex function over the (masked) simplex.

  Projected gradient descent with an adaptive step (grown 1.5x after an
  accepted step, halved and retried after a rejected one, by the sufficient
  decrease test of Beck & Teboulle), a fixed number of iterations so it
  runs inside `jit` at a fixed cost.

  Args:
    objective: w [k] -> scalar, convex and differentiable on the simplex.
    start_k: a point of the simplex.
    mask_k: 1 for the coordinates that may be non-zero.
    iterations: projected-gradient steps.

  Returns:
    The minimiser, [k].
  """
  value_and_grad = jax.value_and_grad(objective)

  def body(_, carry):
    w_k, step = carry
    value, grad_k = value_and_grad(w_k)
    trial_k = project_simplex(w_k - step * grad_k, mask_k)
    move_k = trial_k - w_k
    decrease_ok = objective(trial_k) <= (value + jnp.dot(grad_k, move_k)
                                         + jnp.dot(move_k, move_k) / (2.0 * step))
    return (jnp.where(decrease_ok, trial_k, w_k),
            jnp.where(decrease_ok, step * 1.5, step * 0.5))

  w_k, _ = jax.lax.fori_loop(0, iterations, body,
                             (project_simplex(start_k, mask_k), jnp.float32(1.0)))
  return w_k


def _min_norm_on_segment(aa, ab, bb):
  """gamma in [0, 1] minimising ||gamma a + (1 - gamma) b||^2, from inner products."""
  denominator = aa - 2.0 * ab + bb
  gamma = jnp.where(denominator > 1e-20, (bb - ab) / jnp.where(denominator > 1e-20,
                                                               denominator, 1.0), 0.5)
  return jnp.clip(gamma, 0.0, 1.0)


def min_norm_simplex(gram_kk: jax.Array, mask_k: jax.Array, *,
                     max_iterations: int = 250, tolerance: float = 1e-5) -> jax.Array:
  """The min-norm point of the convex hull of the task gradients.

  `argmin_{w in simplex} w^T G w`, by Frank-Wolfe with exact line search
  (Sener & Koltun 2018's MinNormSolver, Jaggi 2013): exact in one step for
  two tasks; stops when the weights move less than `tolerance`.

  Args:
    gram_kk: the Gram matrix of the task gradients.
    mask_k: 1 for the tasks in the hull.
    max_iterations: Frank-Wolfe iterations at most.
    tolerance: stop when the weights change by less (L1).

  Returns:
    The weights w [k] (0 on masked tasks, summing to 1).
  """
  gram_kk = jnp.asarray(gram_kk, jnp.float32)
  big = jnp.finfo(jnp.float32).max

  def cond(carry):
    iteration, _, change = carry
    return (iteration < max_iterations) & (change > tolerance)

  def body(carry):
    iteration, w_k, _ = carry
    grad_k = gram_kk @ w_k
    vertex = jnp.argmin(jnp.where(mask_k > 0, grad_k, big))
    aa = w_k @ grad_k           # <current, current>
    ab = grad_k[vertex]         # <current, vertex>
    bb = gram_kk[vertex, vertex]
    gamma = _min_norm_on_segment(aa, ab, bb)
    new_k = gamma * w_k + (1.0 - gamma) * jax.nn.one_hot(vertex, w_k.shape[0])
    return iteration + 1, new_k, jnp.sum(jnp.abs(new_k - w_k))

  _, w_k, _ = jax.lax.while_loop(cond, body, (0, uniform(mask_k), jnp.float32(big)))
  return w_k * mask_k

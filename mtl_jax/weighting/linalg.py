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


def min_norm_simplex(gram_kk: jax.Array, mask_k: jax.Array, *,
                     max_iterations: int | None = None, tolerance: float = 1e-6
                     ) -> jax.Array:
  """The min-norm point of the convex hull of the task gradients, exactly.

  `argmin_{w in simplex} w^T G w` by a primal active-set method (Nocedal &
  Wright 2006, Algorithm 16.3; Wolfe 1976's min-norm point algorithm in the
  coordinates of the Gram matrix), which ends at the exact KKT point in
  finitely many steps: on the free set S it solves the equality-constrained
  problem `[[G_SS, 1], [1^T, 0]] [w_S; -lam] = [0; 1]` (with a 1e-7 ridge
  relative to the mean squared norm, so singular Gram matrices, e.g. equal
  gradients, are fine, and one step of iterative refinement), steps back to the simplex when that
  point leaves it (dropping the blocking task), and frees the task whose
  KKT multiplier `(G w)_j - w^T G w` is most negative until none is below
  `-tolerance * trace(G) / k`. Sener & Koltun 2018 use Frank-Wolfe, whose
  iterates approach this point slowly for three or more tasks.

  Args:
    gram_kk: the Gram matrix of the task gradients.
    mask_k: 1 for the tasks in the hull.
    max_iterations: a cap on the active-set steps (default 4k + 8; each adds
      or drops one task, and the method needs about 2k at most in practice).
    tolerance: the KKT tolerance, relative to the mean squared gradient norm.

  Returns:
    The weights w [k] (0 on masked tasks, summing to 1).
  """
  gram_kk = jnp.asarray(gram_kk, jnp.float32)
  mask_k = jnp.asarray(mask_k, jnp.float32)
  k = gram_kk.shape[0]
  cap = 4 * k + 8 if max_iterations is None else max_iterations
  present = mask_k > 0
  diagonal_k = jnp.diagonal(gram_kk)
  scale = jnp.maximum(jnp.sum(jnp.where(present, diagonal_k, 0.0))
                      / jnp.maximum(jnp.sum(mask_k), 1.0), 1e-30)
  # Work on G / scale: the tolerances are then relative.
  g_kk = gram_kk / scale

  def solve_on(free_k):
    """The minimiser of w^T G w with sum w = 1 and w = 0 off the free set."""
    f = free_k.astype(jnp.float32)
    kkt = jnp.zeros((k + 1, k + 1), jnp.float32)
    kkt = kkt.at[:k, :k].set(g_kk * f[:, None] * f[None, :] + jnp.diag(1.0 - f))
    kkt = kkt.at[:k, k].set(f).at[k, :k].set(f)
    rhs = jnp.zeros((k + 1,), jnp.float32).at[k].set(1.0)
    # A ridge of 1e-7 (G is scaled to a unit mean diagonal) keeps the solve
    # finite on singular free sets (equal gradients) and biases w by ~1e-7.
    regularised = kkt.at[:k, :k].add(jnp.diag(1e-7 * f))
    x = jnp.linalg.solve(regularised, rhs)
    x = x + jnp.linalg.solve(regularised, rhs - kkt @ x)  # iterative refinement
    return x[:k] * f

  def multipliers(w_k):
    grad_k = g_kk @ w_k
    return grad_k - jnp.dot(w_k, grad_k)

  def cond(carry):
    iteration, _, _, done = carry
    return (iteration < cap) & ~done

  def body(carry):
    iteration, w_k, free_k, _ = carry
    p_k = solve_on(free_k)
    feasible = jnp.all(jnp.where(free_k, p_k, 0.0) >= -1e-7)

    # Feasible: move there; optimal unless a fixed task has a negative multiplier.
    mu_k = jnp.where(free_k | ~present, jnp.inf, multipliers(jnp.maximum(p_k, 0.0)))
    entering = jnp.argmin(mu_k)
    optimal = mu_k[entering] >= -tolerance
    # Infeasible: the longest step towards p_k that stays on the simplex.
    shrinking = free_k & (p_k < w_k)
    ratios_k = jnp.where(shrinking, w_k / jnp.where(shrinking, w_k - p_k, 1.0), jnp.inf)
    leaving = jnp.argmin(ratios_k)
    alpha = jnp.clip(ratios_k[leaving], 0.0, 1.0)
    stepped_k = jnp.where(free_k, w_k + alpha * (p_k - w_k), 0.0)
    stepped_k = stepped_k.at[leaving].set(0.0)

    new_w = jnp.where(feasible, jnp.maximum(p_k, 0.0), stepped_k)
    new_free = jnp.where(feasible, free_k.at[entering].set(~optimal | free_k[entering]),
                         free_k.at[leaving].set(False))
    return iteration + 1, new_w, new_free, feasible & optimal

  # Start at the vertex of the shortest present gradient.
  start = jnp.argmin(jnp.where(present, diagonal_k, jnp.inf))
  w0 = jax.nn.one_hot(start, k, dtype=jnp.float32)
  _, w_k, _, _ = jax.lax.while_loop(cond, body, (0, w0, w0 > 0, jnp.bool_(False)))
  w_k = jnp.where(present, jnp.maximum(w_k, 0.0), 0.0)
  return w_k / jnp.maximum(jnp.sum(w_k), 1e-30)

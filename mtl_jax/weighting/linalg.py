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
  """Multiplies each task's slice by its `mask_k` entry (0 zeroes an absent task's)."""
  return jax.tree.map(
      lambda leaf: leaf * mask_k.astype(leaf.dtype).reshape((-1,) + (1,) * (leaf.ndim - 1)),
      grads_k)


def per_task_zeros(shared_shapes: Any, num_tasks: int, method: str) -> Any:
  """Zeros of [num_tasks, *shape] per shared parameter: a per-task copy of the gradient."""
  if shared_shapes is None:
    raise ValueError(f"{method}: its state is shaped like the shared parameters; "
                     "build it with weighting.from_spec(..., shared_shapes=...)")
  return jax.tree.map(lambda leaf: jnp.zeros((num_tasks,) + tuple(leaf.shape), jnp.float32),
                      shared_shapes)


def track(y_k: Any, grads_k: Any, rate: jax.Array, present_k: jax.Array) -> Any:
  """`y <- y - rate (y - g)` for the present tasks (absent ones keep theirs)."""

  def one(y, g):
    mask = present_k.reshape((-1,) + (1,) * (g.ndim - 1)) > 0
    return jnp.where(mask, y - rate * (y - g.astype(jnp.float32)), y)

  return jax.tree.map(one, y_k, grads_k)


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


def trace_normalized(gram_kk: jax.Array, present_k: jax.Array, norm_eps: float,
                     reg_eps: float) -> jax.Array:
  """G over the present tasks, divided by its trace, plus `reg_eps * I` (torchjd's
  `regularize(normalize(G, norm_eps), reg_eps)`: a trace below `norm_eps` counts as 0)."""
  gram_kk = gram_kk * present_k[:, None] * present_k[None, :]
  trace = jnp.trace(gram_kk)
  gram_kk = jnp.where(trace < norm_eps, 0.0, gram_kk / jnp.maximum(trace, 1e-30))
  return gram_kk + reg_eps * jnp.eye(gram_kk.shape[0])


def iterate_until_done(body: Callable[[tuple], tuple], carry: tuple, max_iterations: int
                       ) -> tuple:
  """`carry = body(carry)` until its last element (a bool `done`) is set, or
  `max_iterations` times: the loop of the solvers here, inside `jit`.

  Returns:
    The last carry; its `done` says whether the solver's own test stopped it.
  """

  def cond(state):
    iteration, carry = state
    return (iteration < max_iterations) & ~carry[-1]

  def step(state):
    iteration, carry = state
    return iteration + 1, body(carry)

  return jax.lax.while_loop(cond, step, (0, carry))[1]


def min_norm_simplex(gram_kk: jax.Array, mask_k: jax.Array, *,
                     linear_k: jax.Array | None = None,
                     max_iterations: int | None = None, tolerance: float = 1e-6
                     ) -> jax.Array:
  """The min-norm point of the convex hull of the task gradients, exactly.

  `argmin_{w in simplex} w^T G w` (with `linear_k`: `w^T G w / 2 + linear^T w`,
  the inner problem of CAGrad) by a primal active-set method (Nocedal &
  Wright 2006, Algorithm 16.3; Wolfe 1976's min-norm point algorithm in the
  coordinates of the Gram matrix), which ends at the exact KKT point in
  finitely many steps: on the free set S it solves the equality-constrained
  problem `[[G_SS, 1], [1^T, 0]] [w_S; -lam] = [-linear_S; 1]` (with a 1e-7 ridge
  relative to the mean squared norm, so singular Gram matrices, e.g. equal
  gradients, are fine, and one step of iterative refinement), steps back to the simplex when that
  point leaves it (dropping the blocking task), and frees the task whose
  KKT multiplier `(G w + linear)_j - w^T (G w + linear)` is most negative until none is below
  `-tolerance * trace(G) / k`. Sener & Koltun 2018 use Frank-Wolfe, whose
  iterates approach this point slowly for three or more tasks.

  Args:
    gram_kk: the Gram matrix of the task gradients.
    mask_k: 1 for the tasks in the hull.
    linear_k: a linear term (default none), in the units of G.
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
  c_k = (jnp.zeros((k,), jnp.float32) if linear_k is None
         else jnp.where(present, jnp.asarray(linear_k, jnp.float32), 0.0) / scale)

  def solve_on(free_k):
    """The minimiser with sum w = 1 and w = 0 off the free set."""
    f = free_k.astype(jnp.float32)
    kkt = jnp.zeros((k + 1, k + 1), jnp.float32)
    kkt = kkt.at[:k, :k].set(g_kk * f[:, None] * f[None, :] + jnp.diag(1.0 - f))
    kkt = kkt.at[:k, k].set(f).at[k, :k].set(f)
    rhs = jnp.concatenate([-c_k * f, jnp.ones((1,), jnp.float32)])
    # A ridge of 1e-7 (G is scaled to a unit mean diagonal) keeps the solve
    # finite on singular free sets (equal gradients) and biases w by ~1e-7.
    regularised = kkt.at[:k, :k].add(jnp.diag(1e-7 * f))
    x = jnp.linalg.solve(regularised, rhs)
    x = x + jnp.linalg.solve(regularised, rhs - kkt @ x)  # iterative refinement
    return x[:k] * f

  def multipliers(w_k):
    grad_k = g_kk @ w_k + c_k
    return grad_k - jnp.dot(w_k, grad_k)

  def body(carry):
    w_k, free_k, _ = carry
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
    return new_w, new_free, feasible & optimal

  # Start at the best present vertex (without a linear term: the shortest gradient).
  start = jnp.argmin(jnp.where(present, 0.5 * jnp.diagonal(g_kk) + c_k, jnp.inf))
  w0 = jax.nn.one_hot(start, k, dtype=jnp.float32)
  w_k, _, _ = iterate_until_done(body, (w0, w0 > 0, jnp.bool_(False)), cap)
  w_k = jnp.where(present, jnp.maximum(w_k, 0.0), 0.0)
  return w_k / jnp.maximum(jnp.sum(w_k), 1e-30)


def min_quadratic_above(gram_kk: jax.Array, lower_k: jax.Array, *,
                        max_iterations: int | None = None, tolerance: float = 1e-6
                        ) -> tuple[jax.Array, jax.Array]:
  """`argmin_{v >= lower} v^T G v` for positive definite G, exactly.

  A primal active-set method for bound constraints (Nocedal & Wright 2006,
  Algorithm 16.3), which ends at the exact KKT point in finitely many steps:
  with the tasks at their bound fixed, it solves `G_FF v_F = -G_FA lower_A` on
  the free set F (with iterative refinement), steps back to the bounds when
  that point crosses one (fixing the blocking task), and frees the fixed task
  whose multiplier `(G v)_j` asks for the largest move `-(G v)_j / G_jj`
  until none asks for more than `tolerance * max|v|`. Coordinate descent (our
  earlier solver) needs thousands of sweeps when cond(G) is about 1e3.

  Args:
    gram_kk: a positive definite [k, k] matrix (add a ridge where G may be
      singular, as UPGrad's normalisation does).
    lower_k: the lower bounds.
    max_iterations: a cap on the active-set steps (default 4k + 8; each frees
      or fixes one task, and the method needs about k in practice).
    tolerance: the KKT tolerance, relative to the largest |v_j|.

  Returns:
    (v [k], converged): the minimiser, and whether the KKT test passed
    before the cap (tests check the cap is never reached).
  """
  gram_kk = jnp.asarray(gram_kk, jnp.float32)
  lower_k = jnp.asarray(lower_k, jnp.float32)
  k = gram_kk.shape[0]
  cap = 4 * k + 8 if max_iterations is None else max_iterations
  scale = jnp.maximum(jnp.trace(gram_kk) / k, 1e-30)
  g_kk = gram_kk / scale  # the multipliers' tolerance is then relative

  def solve_on(free_k):
    """The minimiser with the fixed tasks at their bounds."""
    f = free_k.astype(jnp.float32)
    fixed_k = lower_k * (1.0 - f)
    matrix = g_kk * f[:, None] * f[None, :] + jnp.diag(1.0 - f)
    rhs = -(g_kk @ fixed_k) * f
    u = jnp.linalg.solve(matrix, rhs)
    u = u + jnp.linalg.solve(matrix, rhs - matrix @ u)  # iterative refinement
    return fixed_k + u * f

  def body(carry):
    v_k, free_k, _ = carry
    p_k = solve_on(free_k)
    feasible = jnp.all(jnp.where(free_k, p_k - lower_k, 0.0) >= 0.0)
    # Feasible: move there; optimal unless a fixed task has a negative multiplier.
    # Each is measured as the move freeing its task would make, -mu_j / G_jj,
    # against the size of v: tasks with tiny gradients have tiny multipliers.
    move_k = jnp.where(free_k, -jnp.inf, -(g_kk @ p_k) / jnp.diagonal(g_kk))
    entering = jnp.argmax(move_k)
    optimal = move_k[entering] <= tolerance * jnp.max(jnp.abs(p_k))
    # Infeasible: the longest step towards p_k that keeps every bound.
    crossing = free_k & (p_k < lower_k)
    ratios_k = jnp.where(crossing, (v_k - lower_k) / jnp.where(crossing, v_k - p_k, 1.0),
                         jnp.inf)
    leaving = jnp.argmin(ratios_k)
    alpha = jnp.clip(ratios_k[leaving], 0.0, 1.0)
    stepped_k = (v_k + alpha * (p_k - v_k)).at[leaving].set(lower_k[leaving])

    new_v = jnp.where(feasible, p_k, stepped_k)
    new_free = jnp.where(feasible, free_k.at[entering].set(~optimal | free_k[entering]),
                         free_k.at[leaving].set(False))
    return new_v, new_free, feasible & optimal

  # Start with every task at its bound (feasible).
  v_k, _, converged = iterate_until_done(
      body, (lower_k, jnp.zeros((k,), bool), jnp.bool_(False)), cap)
  return jnp.maximum(v_k, lower_k), converged

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.weighting import diagnostics, linalg

from helpers import exact_min_quadratic_above


def test_gram_combine_norms_and_cosines_over_a_pytree():
  grads_k = {"a": jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]),
             "b": {"c": jnp.array([[[0.0]], [[0.0]], [[-1.0]]])}}
  flat_kp = np.array([[1, 0, 0], [0, 2, 0], [1, 1, -1]], np.float64)
  np.testing.assert_allclose(linalg.gram(grads_k), flat_kp @ flat_kp.T)
  np.testing.assert_allclose(linalg.norms(grads_k), np.linalg.norm(flat_kp, axis=1), rtol=1e-6)
  np.testing.assert_allclose(diagnostics.gradient_norms(grads_k), np.sqrt([1, 4, 3]), rtol=1e-6)
  cosines = diagnostics.gradient_cosines(grads_k)
  normed = flat_kp / np.linalg.norm(flat_kp, axis=1, keepdims=True)
  np.testing.assert_allclose(cosines, normed @ normed.T, rtol=1e-6)
  combined = linalg.combine(jnp.array([1.0, 0.5, -1.0]), grads_k)
  np.testing.assert_allclose(combined["a"], [0.0, 0.0])
  np.testing.assert_allclose(combined["b"]["c"], [[1.0]])


def test_cosines_of_a_zero_gradient_are_zero():
  cosines = diagnostics.gradient_cosines({"w": jnp.array([[1.0, 0.0], [0.0, 0.0]])})
  np.testing.assert_array_equal(cosines, [[1.0, 0.0], [0.0, 0.0]])


def test_simplex_projection_matches_brute_force():
  rng = np.random.default_rng(0)
  for _ in range(20):
    x = rng.normal(size=4) * 2
    mask = np.array([1, 1, 0, 1], np.float32)
    projected = np.asarray(linalg.project_simplex(jnp.asarray(x, jnp.float32), mask))
    assert projected[2] == 0 and projected.min() >= 0
    np.testing.assert_allclose(projected.sum(), 1.0, rtol=1e-6)
    # The projection is closer to x than 2000 random points of the masked simplex.
    points = rng.dirichlet(np.ones(3), 2000)
    distances = np.linalg.norm(points - x[[0, 1, 3]], axis=1)
    assert np.linalg.norm(projected[[0, 1, 3]] - x[[0, 1, 3]]) <= distances.min() + 1e-5


def test_min_norm_point_of_two_gradients_is_the_closed_form():
  g1, g2 = np.array([1.0, 0.0]), np.array([-0.5, 2.0])
  gram = np.stack([g1, g2]) @ np.stack([g1, g2]).T
  # min_w ||w g1 + (1 - w) g2||: w = (g2 - g1) . g2 / ||g1 - g2||^2.
  w = np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0, 1)
  weights = linalg.min_norm_simplex(jnp.asarray(gram, jnp.float32), jnp.ones(2))
  np.testing.assert_allclose(weights, [w, 1 - w], rtol=1e-6)
  # A gradient inside the others' hull: the min-norm point is the vertex.
  gram = np.array([[1.0, 1.0], [1.0, 4.0]], np.float32)  # g2 = 2 g1 (same direction)
  np.testing.assert_allclose(linalg.min_norm_simplex(gram, jnp.ones(2)), [1.0, 0.0])


def test_min_norm_point_of_orthogonal_gradients():
  # ||sum w_i g_i||^2 = sum w_i^2 n_i^2 on the simplex: w_i proportional to 1 / n_i^2.
  norms = np.array([1.0, 2.0, 0.5])
  weights = linalg.min_norm_simplex(jnp.diag(jnp.asarray(norms ** 2, jnp.float32)),
                                    jnp.ones(3))
  expected = (1 / norms ** 2) / np.sum(1 / norms ** 2)
  np.testing.assert_allclose(weights, expected, rtol=1e-3)


def test_min_norm_point_matches_a_fine_grid():
  rng = np.random.default_rng(1)
  g = rng.normal(size=(3, 5))
  gram = g @ g.T
  weights = np.asarray(linalg.min_norm_simplex(jnp.asarray(gram, jnp.float32), jnp.ones(3)))
  grid = np.array([(a, b, 1 - a - b) for a, b in itertools.product(np.linspace(0, 1, 201),
                                                                     repeat=2) if a + b <= 1])
  best = np.min(np.einsum("ni,ij,nj->n", grid, gram, grid))
  assert weights @ gram @ weights <= best + 1e-4


def test_helpers_give_known_answers_inside_jit():
  # The min-norm point of three orthonormal gradients is their centroid.
  np.testing.assert_allclose(jax.jit(linalg.min_norm_simplex)(jnp.eye(3), jnp.ones(3)),
                             np.full(3, 1 / 3), atol=1e-5)
  # Projections onto the simplex: an interior shift, a corner, a masked-out task.
  project = jax.jit(linalg.project_simplex)
  np.testing.assert_allclose(project(jnp.ones(3), jnp.ones(3)), np.full(3, 1 / 3), atol=1e-6)
  np.testing.assert_allclose(project(jnp.array([2.0, 0.0, 0.0]), jnp.ones(3)), [1, 0, 0],
                             atol=1e-6)
  np.testing.assert_allclose(project(jnp.array([0.5, 0.5, 5.0]), jnp.array([1.0, 1.0, 0.0])),
                             [0.5, 0.5, 0.0], atol=1e-6)


@pytest.mark.parametrize("num_tasks", [3, 8, 16])
def test_min_norm_point_meets_its_kkt_conditions_in_float32(num_tasks):
  # KKT of min w^T G w on the simplex: (G w)_j >= w^T G w for every task, with
  # equality on the support. Random, ill-conditioned and nearly opposite
  # gradients, fewer dimensions than tasks (the origin inside the hull).
  rng = np.random.default_rng(num_tasks)
  solve = jax.jit(linalg.min_norm_simplex)
  solve_long = jax.jit(functools.partial(linalg.min_norm_simplex, max_iterations=1000))
  for case in range(12):
    dims = int(rng.integers(2, 3 * num_tasks))
    jac = rng.normal(size=(num_tasks, dims))
    if case % 3 == 1:
      jac *= np.logspace(0, 1.5, num_tasks)[:, None]
    if case % 3 == 2:
      jac[1] = -jac[0] + 1e-3 * rng.normal(size=dims)
    gram = jac @ jac.T
    w = np.asarray(solve(jnp.asarray(gram, jnp.float32), jnp.ones(num_tasks)), np.float64)
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-6
    multipliers = (gram @ w - w @ gram @ w) / (np.trace(gram) / num_tasks)
    assert multipliers.min() > -1e-6, case
    assert np.abs(multipliers[w > 0]).max() < 1e-6, case
    # The default cap on the active-set steps is not what stopped it.
    np.testing.assert_array_equal(
        w, solve_long(jnp.asarray(gram, jnp.float32), jnp.ones(num_tasks)))


def test_min_quadratic_above_is_exact_on_ill_conditioned_cases():
  # UPGrad's QPs (trace-normalised G + 1e-4 I, one task's bound 1/k): gradients of
  # norms spread by orders of magnitude, half of them with two nearly opposite
  # tasks (cond(G) up to ~1e4). Coordinate descent needed >1,000 sweeps here.
  rng = np.random.default_rng(0)
  solve = jax.jit(linalg.min_quadratic_above)
  worst = 0.0
  for case in range(60):
    k = int(rng.integers(2, 9))
    jac = rng.normal(size=(k, k + int(rng.integers(0, 5))))
    if case % 2:
      jac[1] = -jac[0] + 1e-2 * rng.normal(size=jac.shape[1])
    jac *= np.exp(1.5 * rng.normal(size=(k, 1)))
    gram = jac @ jac.T
    gram = (gram / np.trace(gram) + 1e-4 * np.eye(k)).astype(np.float32)
    lower = np.eye(k)[int(rng.integers(k))] / k
    expected = exact_min_quadratic_above(gram.astype(np.float64), lower)
    v, converged = solve(jnp.asarray(gram), jnp.asarray(lower, jnp.float32))
    assert bool(converged), case  # the KKT test, not the cap, stopped it
    assert np.all(np.asarray(v) >= lower - 1e-7)
    worst = max(worst, np.linalg.norm(np.asarray(v, np.float64) - expected)
                / np.linalg.norm(expected))
  # float32's limit at cond 1e4 (coordinate descent to convergence: 4.2e-5).
  assert worst < 1e-4, worst


def test_min_quadratic_above_known_answer():
  # min v^T G v, v >= (1, 0) with G = [[2, -1], [-1, 2]]: v = (1, 0.5).
  v, converged = linalg.min_quadratic_above(jnp.array([[2.0, -1.0], [-1.0, 2.0]]),
                                            jnp.array([1.0, 0.0]))
  np.testing.assert_allclose(v, [1.0, 0.5], rtol=1e-6)
  assert bool(converged)

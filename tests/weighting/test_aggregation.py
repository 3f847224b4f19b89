"""Known answers and defining properties of the gradient-aggregation methods."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from mtl_jax import weighting
from mtl_jax.weighting import cagrad as cagrad_module, nash_mtl, pcgrad


def _update(name, grads, **extras):
  method = weighting.from_spec(name, num_tasks=len(grads))
  extras.setdefault("rng", jax.random.PRNGKey(0))
  update, _ = method.update({"w": jnp.asarray(grads, jnp.float32)}, method.init(len(grads)),
                            **extras)
  return np.asarray(update["w"])


def test_pcgrad_projects_two_conflicting_gradients():
  g1, g2 = np.array([1.0, 0.0]), np.array([-1.0, 1.0])  # <g1, g2> = -1 < 0
  # g1 onto the normal plane of g2: g1 - (g1.g2 / |g2|^2) g2 = (0.5, 0.5);
  # g2 onto that of g1: g2 - (g2.g1 / |g1|^2) g1 = (0, 1). Sum: (0.5, 1.5).
  np.testing.assert_allclose(_update("pcgrad", [g1, g2]), [0.5, 1.5], rtol=1e-6)
  # Non-conflicting gradients are summed untouched.
  np.testing.assert_allclose(_update("pcgrad", [[1.0, 0.0], [1.0, 1.0]]), [2.0, 1.0])


def test_pcgrad_projections_follow_the_random_order():
  g = np.array([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [-1.0, -1.0, 1.0]])
  gram = jnp.asarray(g @ g.T, jnp.float32)

  def reference(order):
    total = np.zeros(3)
    for i in range(3):
      projected = g[i].copy()
      for j in order[i]:
        if j != i and projected @ g[j] < 0:
          projected -= projected @ g[j] / (g[j] @ g[j]) * g[j]
      total += projected
    return total

  for orders in ([[0, 1, 2]] * 3, [[2, 1, 0]] * 3, [[1, 2, 0], [0, 2, 1], [1, 0, 2]]):
    coeffs = pcgrad.pcgrad_coefficients(gram, jnp.ones(3), jnp.asarray(orders))
    np.testing.assert_allclose(np.asarray(coeffs) @ g, reference(orders), atol=1e-6)


def test_mgda_is_the_min_norm_point():
  g1, g2 = np.array([1.0, 0.0]), np.array([0.0, 2.0])
  # min ||w g1 + (1-w) g2||^2 = w^2 + 4 (1-w)^2: w = 0.8 -> (0.8, 0.4).
  np.testing.assert_allclose(_update("mgda", [g1, g2]), [0.8, 0.4], rtol=1e-6)
  # The min-norm point is orthogonal-or-better to every gradient: <d, g_i> >= ||d||^2.
  rng = np.random.default_rng(0)
  g = rng.normal(size=(4, 6))
  d = _update("mgda", g)
  assert np.all(g @ d >= d @ d - 1e-4)
  # 'l2' normalisation: weights from unit gradients, applied to the raw ones.
  np.testing.assert_allclose(_update("mgda(normalization='l2')", [g1, g2]), [0.5, 1.0],
                             rtol=1e-6)


def test_cagrad_matches_scipy_on_the_dual():
  rng = np.random.default_rng(0)
  g = rng.normal(size=(3, 5))
  c = 0.4
  gram, g0 = g @ g.T, g.mean(0)
  radius = c * np.linalg.norm(g0)

  def objective(w):
    gw = w @ g
    return gw @ g0 + radius * np.linalg.norm(gw)

  best = scipy.optimize.minimize(objective, np.ones(3) / 3, bounds=[(0, 1)] * 3,
                                 constraints={"type": "eq", "fun": lambda w: w.sum() - 1},
                                 method="SLSQP", options={"ftol": 1e-12})
  gw = best.x @ g
  expected = (g0 + radius / np.linalg.norm(gw) * gw) / (1 + c ** 2)
  np.testing.assert_allclose(_update("cagrad", g), expected, rtol=1e-5, atol=1e-6)
  del gram


def test_cagrad_bisection_stops_on_its_residual_not_its_cap():
  # Random gradients, T = 2..10, norms spread by orders of magnitude: the
  # bisection on ||g_w|| must end by its own test (|t - ||g_w||| <= 1e-6 t).
  rng = np.random.default_rng(3)
  inner = jax.jit(cagrad_module.cagrad_inner, static_argnums=(4, 5))
  for case in range(40):
    k = int(rng.integers(2, 11))
    jac = rng.normal(size=(k, k + 4)) * np.exp(rng.normal(size=(k, 1)))
    gram = jac @ jac.T
    gram_kk = jnp.asarray(gram / np.trace(gram), jnp.float32)
    mean_k = jnp.full((k,), 1.0 / k)
    radius = 0.4 * jnp.sqrt(mean_k @ gram_kk @ mean_k)
    w_k, norm, converged = inner(gram_kk, mean_k, radius, jnp.ones((k,)), 1e-6, 60)
    assert bool(converged), case
    np.testing.assert_allclose(norm, jnp.sqrt(w_k @ gram_kk @ w_k), rtol=1e-5)


def test_imtl_g_projects_equally_on_every_task():
  g1, g2 = np.array([1.0, 0.0]), np.array([0.0, 2.0])
  # alpha g1 + (1 - alpha) g2 with equal projections on u1, u2: alpha = 2/3.
  np.testing.assert_allclose(_update("imtl_g", [g1, g2]), [2 / 3, 2 / 3], rtol=1e-5)
  rng = np.random.default_rng(1)
  g = rng.normal(size=(3, 6))
  d = _update("imtl_g", g)
  projections = g @ d / np.linalg.norm(g, axis=1)
  np.testing.assert_allclose(projections, projections[0], rtol=1e-4)


def test_aligned_mtl_makes_the_components_orthogonal_and_equal():
  rng = np.random.default_rng(2)
  g = rng.normal(size=(3, 8))
  method = weighting.from_spec("aligned_mtl", num_tasks=3)
  gram = jnp.asarray(g @ g.T, jnp.float32)
  coeffs, _ = method.weigh(gram, method.init(3))
  # The reference: eigendecomposition of the Gram matrix.
  values, vectors = np.linalg.eigh(g @ g.T)
  align = np.sqrt(values.min()) * vectors @ np.diag(values ** -0.5) @ vectors.T
  np.testing.assert_allclose(coeffs, align @ np.ones(3), rtol=1e-4)
  # The aligned task gradients (rows of align^T G) are orthogonal with equal norms.
  aligned = align.T @ g
  aligned_gram = aligned @ aligned.T
  np.testing.assert_allclose(aligned_gram, values.min() * np.eye(3), atol=1e-6 * values.max())


def test_nash_mtl_solves_the_bargaining_condition():
  rng = np.random.default_rng(3)
  g = rng.normal(size=(4, 10))
  gram = jnp.asarray(g @ g.T, jnp.float32)
  method = weighting.from_spec("nash_mtl", num_tasks=4)
  alpha, state = method.weigh(gram, method.init(4))
  # G alpha = 1 / alpha, alpha > 0: no ridge on a well-posed problem.
  assert np.all(alpha > 0)
  np.testing.assert_allclose(np.asarray(gram) @ alpha, 1 / alpha, rtol=1e-5)
  # Warm start: the next solve starts at the solution and stays there.
  alpha2, _ = method.weigh(gram, state)
  np.testing.assert_allclose(alpha2, alpha, rtol=1e-5)
  # Orthogonal gradients: alpha_i = 1 / ||g_i||.
  norms = jnp.array([1.0, 3.0])
  alpha, _ = method.weigh(jnp.diag(norms ** 2), method.init(2))
  np.testing.assert_allclose(alpha, 1 / norms, rtol=1e-4)


def test_nash_mtl_meets_the_bargaining_condition_on_ill_scaled_gradients():
  # Gradient norms spread over 1.5 decades (Gram condition numbers to ~1e5): the
  # condition holds to 1e-5 in float32 (with the old Frobenius normalisation and
  # a fixed 1e-5 ridge, residuals reached 2.7e-2).
  rng = np.random.default_rng(5)
  for case in range(20):
    k = int(rng.integers(2, 11))
    g = rng.normal(size=(k, k + int(rng.integers(0, 20)))) * np.logspace(0, 1.5, k)[:, None]
    gram = g @ g.T
    method = weighting.from_spec("nash_mtl", num_tasks=k)
    alpha, _ = jax.jit(method.weigh)(jnp.asarray(gram, jnp.float32), method.init(k))
    alpha = np.asarray(alpha, np.float64)
    assert np.abs(alpha * (gram @ alpha) - 1).max() < 1e-5, case


def test_nash_solver_converges_from_far_away():
  gram = jnp.array([[1.0, 0.2], [0.2, 1e-4]])
  alpha = nash_mtl.nash_solve(gram, jnp.ones(2), 40)
  np.testing.assert_allclose(gram @ alpha, 1 / alpha, rtol=1e-4)


def test_gradvac_raises_similarity_towards_its_target():
  g = np.array([[1.0, 0.0], [-0.6, 0.8]])  # cosine -0.6
  method = weighting.from_spec("gradvac(beta=0.5)", num_tasks=2)
  state = method.init(2)
  extras = {"rng": jax.random.PRNGKey(0)}
  # Targets start at 0: the first step lifts each gradient to cosine 0 with the
  # other (here, exactly PCGrad), and the targets move half way to -0.6.
  update, state = method.update({"w": jnp.asarray(g, jnp.float32)}, state, **extras)
  np.testing.assert_allclose(update["w"], _update("pcgrad", g), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(state.targets_kk, [[0.0, -0.3], [-0.3, 0.0]], atol=1e-6)
  # A target of 0.5 (unit gradients, so both adjustments use the same weight w):
  # g_i' = g_i + w g_j, with w from the paper's formula, has cosine 0.5 with g_j.
  state = state._replace(targets_kk=jnp.array([[0.0, 0.5], [0.5, 0.0]]))
  coeffs, _ = method.weigh(jnp.asarray(g @ g.T, jnp.float32), state, **extras)
  phi, target = -0.6, 0.5
  w = (target * np.sqrt(1 - phi ** 2) - phi * np.sqrt(1 - target ** 2)) / np.sqrt(
      1 - target ** 2)
  np.testing.assert_allclose(coeffs, [1 + w, 1 + w], rtol=1e-5)
  adjusted = g[0] + w * g[1]
  np.testing.assert_allclose(adjusted @ g[1] / np.linalg.norm(adjusted), 0.5, rtol=1e-6)


def test_graddrop_keeps_one_sign_per_coordinate():
  g = np.array([[1.0, -2.0, 3.0, 0.5], [-1.0, -1.0, 1.0, -0.5], [2.0, 1.0, -4.0, 0.0]])
  for seed in range(5):
    update = _update("graddrop", g, rng=jax.random.PRNGKey(seed))
    # Each coordinate is the sum of the positive parts or of the negative parts.
    positive, negative = np.where(g > 0, g, 0).sum(0), np.where(g < 0, g, 0).sum(0)
    assert np.all(np.isclose(update, positive) | np.isclose(update, negative))
  # A coordinate where every task agrees is always kept.
  update = _update("graddrop", [[1.0, 2.0], [3.0, -1.0]])
  assert update[0] == 4.0
  # leak = 1: the plain sum.
  np.testing.assert_allclose(_update("graddrop(leak=1.0)", g), g.sum(0))


def test_upgrad_matches_scipy_and_conflicts_with_no_task():
  rng = np.random.default_rng(4)
  g = rng.normal(size=(3, 5))
  gram = g @ g.T
  normalized = gram / np.trace(gram) + 1e-4 * np.eye(3)
  expected = np.zeros(3)
  for i in range(3):
    lower = np.eye(3)[i] / 3
    best = scipy.optimize.minimize(lambda v: v @ normalized @ v, lower + 0.1,
                                   bounds=[(l, None) for l in lower], method="L-BFGS-B",
                                   options={"ftol": 1e-15, "gtol": 1e-12})
    expected += best.x
  method = weighting.from_spec("upgrad", num_tasks=3)
  coeffs, _ = method.weigh(jnp.asarray(gram, jnp.float32), method.init(3))
  np.testing.assert_allclose(coeffs, expected, rtol=1e-3, atol=1e-5)
  # The update increases no loss (up to the regularisation).
  assert np.all(g @ (np.asarray(coeffs) @ g) >= -1e-3 * np.linalg.norm(g) ** 2)


@pytest.mark.parametrize("name", ["pcgrad", "mgda", "cagrad", "imtl_g", "aligned_mtl",
                                  "nash_mtl", "gradvac", "upgrad"])
def test_one_task_is_its_own_gradient_direction(name):
  g = np.array([[3.0, -4.0]])
  update = _update(name, g)
  cosine = update @ g[0] / (np.linalg.norm(update) * 5.0)
  np.testing.assert_allclose(cosine, 1.0, rtol=1e-5)


def _task_rms_updates(grads, steps, per="element", present=None):
  """The updates of `steps` task_rms steps on the same per-task gradients."""
  grads_k = {"w": jnp.asarray(grads, jnp.float32)}
  method = weighting.from_spec(f"task_rms(per={per!r})", num_tasks=len(grads),
                               shared_shapes={"w": grads_k["w"][0]})
  state, updates = method.init(len(grads)), []
  for step in range(steps):
    extras = {} if present is None else {"present_k": jnp.asarray(present[step], jnp.float32)}
    update, state = method.update(grads_k, state, **extras)
    updates.append(np.asarray(update["w"]))
  return updates, state


def test_task_rms_gives_every_task_an_equal_say_per_parameter():
  # Constant gradients: each task's bias-corrected RMS is |g| at every step,
  # so each entry is the tasks' mean |g| times the sum of their signs. The
  # plain sum, [-3, 4], lets task 2's larger gradient win entry 0.
  updates, _ = _task_rms_updates([[1.0, 3.0], [-4.0, 1.0]], steps=3)
  for update in updates:
    np.testing.assert_allclose(update, [0.0, 4.0], atol=1e-6)
  # Parallel gradients of different sizes: the plain sum.
  updates, _ = _task_rms_updates([[1.0, -2.0], [10.0, -20.0]], steps=2)
  np.testing.assert_allclose(updates[-1], [11.0, -22.0], rtol=1e-6)
  # One task: its own gradient.
  updates, _ = _task_rms_updates([[0.3, -7.0]], steps=2)
  np.testing.assert_allclose(updates[-1], [0.3, -7.0], rtol=1e-6)


def test_task_rms_per_tensor_equalises_the_task_norms():
  # Norms 1 and 10 (RMS 1/sqrt 2 and 10/sqrt 2): both scaled to the mean, 5.5.
  updates, _ = _task_rms_updates([[1.0, 0.0], [0.0, 10.0]], steps=2, per="tensor")
  np.testing.assert_allclose(updates[-1], [5.5, 5.5], rtol=1e-6)


def test_task_rms_moments_follow_only_the_steps_a_task_takes_part_in():
  # Task 2 absent at step 0: its moment and count wait; from step 1 on its
  # bias-corrected RMS is exactly |g| again, and the update is the known one.
  updates, state = _task_rms_updates([[1.0, 3.0], [-4.0, 1.0]], steps=2,
                                     present=[[1.0, 0.0], [1.0, 1.0]])
  np.testing.assert_allclose(updates[0], [1.0, 3.0], rtol=1e-6)
  np.testing.assert_allclose(updates[1], [0.0, 4.0], atol=2e-5)
  np.testing.assert_array_equal(state.count_k, [2, 1])


def test_task_rms_needs_the_shared_shapes():
  with pytest.raises(ValueError, match="shaped like the shared parameters"):
    weighting.from_spec("task_rms", num_tasks=2).init(2)
  with pytest.raises(ValueError, match="per must be one of element, tensor"):
    weighting.from_spec("task_rms(per='row')", num_tasks=2)


def test_task_clip_clips_each_task_before_the_sum():
  # Norms 5 and 0.5 under max_norm 1: the first is scaled to norm 1, the second kept.
  update = _update("task_clip(max_norm=1.0)", [[3.0, 4.0], [0.0, -0.5]])
  np.testing.assert_allclose(update, [0.6, 0.8 - 0.5], rtol=1e-6)


def test_fairgrad_meets_its_condition_on_ill_scaled_gradients():
  # G x = x^(-1/alpha) task by task, without a reference: norms over 3 decades.
  rng = np.random.default_rng(4)
  for alpha in (0.5, 1.0, 2.0):
    method = weighting.from_spec(f"fairgrad(alpha={alpha})")
    for _ in range(10):
      k = int(rng.integers(2, 9))
      jac = rng.normal(size=(k, 16)) * np.exp(1.7 * rng.normal(size=(k, 1)))
      gram = jac @ jac.T
      x, _ = method.weigh(jnp.asarray(gram, jnp.float32), method.init(k))
      x = np.asarray(x, np.float64)
      assert np.all(x > 0)
      np.testing.assert_allclose(gram @ x, x ** (-1.0 / alpha), rtol=1e-4)


def test_dualproj_is_the_mean_projected_onto_the_dual_cone():
  g1, g2 = np.array([1.0, 0.0]), np.array([-2.0, 1.0])
  # The mean (-0.5, 0.5) conflicts with g1; its nearest point with d . g1 >= 0 and
  # d . g2 >= 0 is (0, 0.5) (only g1's constraint active). torchjd's 1e-4 ridge
  # on the trace-normalised G moves it to (-0.0006, 0.5) (torchjd 0.18 gives that too).
  np.testing.assert_allclose(_update("dualproj", [g1, g2]), [-0.0006, 0.5], atol=2e-5)
  # A mean that conflicts with no task is left as it is.
  np.testing.assert_allclose(_update("dualproj", [g1, np.array([0.0, 1.0])]), [0.5, 0.5],
                             rtol=1e-3)

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import relatedness
from mtl_jax.weighting.diagnostics import gradient_cosines


def test_gradient_cosines_match_numpy_over_all_leaves():
  rng = np.random.default_rng(0)
  grads = {"w": rng.normal(size=(3, 4, 2)), "b": rng.normal(size=(3, 5))}
  flat = np.concatenate([grads["w"].reshape(3, -1), grads["b"]], axis=1)
  unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
  got = gradient_cosines(jax.tree.map(jnp.asarray, grads))
  np.testing.assert_allclose(got, unit @ unit.T, atol=1e-5)
  zero = gradient_cosines({"w": jnp.zeros((2, 3))})
  np.testing.assert_array_equal(zero, np.zeros((2, 2)))


def _linear_tasks():
  # Shared weights w; task i's loss is ||X w - y_i||^2 / n. Tasks a and b want
  # the same w, task c the opposite one.
  x = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
  y = x @ np.array([1.0, -2.0, 0.5], np.float32)
  targets = jnp.asarray(np.stack([y, 1.1 * y, -y]))

  def losses_fn(w):
    return jnp.mean(((jnp.asarray(x) @ w)[None, :] - targets) ** 2, axis=1)

  return losses_fn, jnp.zeros(3, jnp.float32)


def test_lookahead_affinity_signs_and_definition():
  losses_fn, w = _linear_tasks()
  lr = 0.05
  out = relatedness.relatedness_measures(losses_fn, w, lr)
  affinity, cosine = np.asarray(out["lookahead_affinity"]), np.asarray(out["gradient_cosine"])
  assert affinity[0, 1] > 0 and affinity[1, 0] > 0  # same direction helps
  assert affinity[0, 2] < 0 and affinity[2, 1] < 0  # opposite targets hurt
  assert cosine[0, 1] == pytest.approx(1.0, abs=1e-5)
  assert cosine[0, 2] == pytest.approx(-1.0, abs=1e-5)
  # The definition, directly: Z_ij = 1 - L_j(w - lr grad L_i) / L_j(w).
  for i in range(3):
    g_i = jax.grad(lambda v: losses_fn(v)[i])(w)
    after = losses_fn(w - lr * g_i)
    np.testing.assert_allclose(affinity[i], 1 - after / losses_fn(w), rtol=1e-4)


def test_measure_fn_steps_only_the_shared_params():
  losses_fn, w = _linear_tasks()
  scale = jnp.ones(3)
  measure = relatedness.make_measure_fn(
      lambda params, batch: losses_fn(params["encoder"]) * params["heads"] * batch)
  out = measure({"encoder": w, "heads": scale}, 1.0, 0.05)
  direct = relatedness.relatedness_measures(losses_fn, w, 0.05)
  np.testing.assert_allclose(out["lookahead_affinity"], direct["lookahead_affinity"],
                             rtol=1e-5)


def test_log_round_trip_resume_and_heat_map(tmp_path):
  log = relatedness.RelatednessLog(("a", "b"))
  for step, c in ((10, 0.2), (20, 0.4), (30, 0.9)):
    log.add(step, {"gradient_cosine": [[1, c], [c, 1]],
                   "lookahead_affinity": [[0.1, -c], [c, 0.2]], "losses": [1.0, 2.0]})
  log.regularizer_relatedness = np.array([[0.0, 1.0], [1.0, 0.0]])
  log.write(str(tmp_path))
  saved = json.loads((tmp_path / "relatedness.json").read_text())
  np.testing.assert_allclose(saved["gradient_cosine"], [[1, 0.5], [0.5, 1]])
  assert saved["tasks"] == ["a", "b"] and saved["num_measurements"] == 3
  assert (tmp_path / "relatedness.png").stat().st_size > 0
  resumed = relatedness.RelatednessLog.load(str(tmp_path), ("a", "b"), before_step=20)
  assert [m["step"] for m in resumed.measurements] == [10, 20]
  with pytest.raises(ValueError, match="measured for tasks"):
    relatedness.RelatednessLog.load(str(tmp_path), ("a", "c"), before_step=20)

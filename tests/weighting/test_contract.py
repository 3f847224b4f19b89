"""The contract every registered balancing method keeps (run over the registry)."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mtl_jax import weighting
from mtl_jax.weighting import base

NUM_TASKS = 3
SPECS = {"static": "static(weights=[1.0, 0.5, 2.0])"}


def _method(name, num_tasks=NUM_TASKS):
  shared_shapes = jax.tree.map(lambda g: g[0], _grads_k(0, num_tasks))
  return weighting.from_spec(SPECS.get(name, name), num_tasks=num_tasks,
                             shared_shapes=shared_shapes)


def _grads_k(seed, num_tasks=NUM_TASKS):
  rng = np.random.default_rng(seed)
  return {"dense": {"kernel": jnp.asarray(rng.normal(size=(num_tasks, 4, 3)), jnp.float32),
                    "bias": jnp.asarray(rng.normal(size=(num_tasks, 3)), jnp.float32)},
          "scale": jnp.asarray(rng.normal(size=(num_tasks,)), jnp.float32)}


def _extras(step, present=(1.0, 1.0, 1.0)):
  return {"step": jnp.int32(step), "rng": jax.random.PRNGKey(step),
          "present_k": jnp.asarray(present, jnp.float32),
          "losses_k": jnp.array([0.7, 1.3, 2.1][:len(present)]) * (1.0 + 0.1 * step)}


def _call(method, state, step):
  """One step of the method as the train step drives it; returns (output, state)."""
  extras = _extras(step)
  if isinstance(method, weighting.GradientAggregation):
    return method.update(_grads_k(step), state, **extras)
  losses_k = extras.pop("losses_k")
  weights_k, state = method.update(losses_k, state, **extras)
  if method.observe is not None:
    state = method.observe(jnp.array([0.5, 2.0, 1.0]), state, losses_k=losses_k,
                           weights_k=weights_k, **extras)
  return weights_k, state


def _shapes(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), tree)


# Each method's paper: (first author, venue and year) as its module docstring must
# name them; the rules of our own seed say so instead of a paper.
PAPERS = {
    "aligned_mtl": ("Senushkin", "CVPR 2023"), "cagrad": ("Liu", "NeurIPS 2021"),
    "dwa": ("Liu", "CVPR 2019"), "famo": ("Liu", "NeurIPS 2023"),
    "gls": ("Chennupati", "CVPR Workshops 2019"), "graddrop": ("Chen", "NeurIPS 2020"),
    "gradnorm": ("Chen", "ICML 2018"), "gradvac": ("Wang", "ICLR 2021"),
    "imtl_g": ("Liu", "ICLR 2021"), "mgda": ("Sener", "NeurIPS 2018"),
    "mgda_ub": ("Sener", "NeurIPS 2018"), "nash_mtl": ("Navon", "ICML 2022"),
    "pcgrad": ("Yu", "NeurIPS 2020"), "rlw": ("Lin", "TMLR 2022"),
    "uncertainty": ("Kendall", "CVPR 2018"), "upgrad": ("Quinton", "2024"),
    "loss_sigmoid": ("The seed's", ""), "norm_ratio": ("The seed's", ""),
    "equal": ("equal", ""), "static": ("static", ""),
    "task_rms": ("This library's rule", ""), "task_clip": ("This library's rule", ""),
    "dualproj": ("Lopez-Paz", "NeurIPS 2017"), "config": ("Liu", "ICLR 2025"),
    "fairgrad": ("Ban", "ICML 2024"), "krum": ("Blanchard", "NeurIPS 2017"),
    "trimmed_mean": ("Yin", "ICML 2018"), "modo": ("Chen", "JMLR 2024"),
    "sdmgrad": ("Xiao", "NeurIPS 2023"), "cr_mogm": ("Zhou", "NeurIPS 2022"),
    "imtl_l": ("Liu", "ICLR 2021"), "scale_invariant": ("Navon", "ICML 2022"),
    "excess_mtl": ("He", "ICML 2024"), "moco": ("Fernando", "ICLR 2023"),
    "db_mtl": ("Lin", "2023"), "stch": ("Lin", "ICML 2024"),
}


def test_every_method_names_its_paper():
  assert sorted(PAPERS) == weighting.names()
  for name, (author, venue) in PAPERS.items():
    factory = base.METHODS[name]
    assert factory.__doc__, f"{name}: the factory has no docstring"
    doc = " ".join((sys.modules[factory.__module__].__doc__ or "").split())
    assert author in doc and venue in doc, f"{name}: the docstring does not name {author} {venue}"


@pytest.mark.parametrize("name", weighting.names())
def test_method_contract(name, tmp_path):
  method = _method(name)
  state = method.init(NUM_TASKS)
  out, state1 = jax.jit(lambda state: _call(method, state, 0))(state)

  if isinstance(method, weighting.GradientAggregation):
    # The update has the structure, shapes and dtypes of one task's gradient.
    expected = jax.tree.map(lambda g: jax.ShapeDtypeStruct(g.shape[1:], g.dtype), _grads_k(0))
    assert _shapes(out) == expected
  else:
    assert out.shape == (NUM_TASKS,) and out.dtype == jnp.float32
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(out))
  # The state keeps its structure, shapes and dtypes: no recompilation.
  assert _shapes(state1) == _shapes(state)
  step = jax.jit(lambda state: _call(method, state, 1))
  _, state2 = step(state1)
  _, state3 = step(state2)
  assert step._cache_size() == 1
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state3))

  # The state round-trips through orbax inside a train-state-like tree.
  saved = {"step": jnp.int32(3), "weighting_state": state3}
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(tmp_path / "state", saved)
  checkpointer.wait_until_finished()
  restored = checkpointer.restore(tmp_path / "state", saved)
  assert jax.tree.structure(restored) == jax.tree.structure(saved)
  jax.tree.map(np.testing.assert_array_equal, restored, saved)


# rlw draws one logit per task, so its draws depend on the number of tasks.
_SAME_DRAWS = [n for n in weighting.names()
               if isinstance(_method(n), weighting.GradientAggregation)]


@pytest.mark.parametrize("name", _SAME_DRAWS)
def test_absent_task_is_as_if_the_task_did_not_exist(name):
  three = _method(name)
  grads_k = jax.tree.map(lambda g: g.at[2].set(0.0), _grads_k(0))  # the step zeroes it
  update, _ = three.update(grads_k, three.init(3), **_extras(0, present=(1.0, 1.0, 0.0)))
  present_grads = jax.tree.map(lambda g: g[:2], grads_k)
  try:
    two = _method(name, num_tasks=2)
  except ValueError:  # krum, trimmed_mean need 3 tasks: with fewer present, the mean
    expected = jax.tree.map(lambda g: g.mean(0), present_grads)
  else:
    expected, _ = two.update(present_grads, two.init(2), **_extras(0, present=(1.0, 1.0)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5),
               update, expected)


def _run_absent(method, absent_loss, absent_norm):
  """Three steps with task 1 absent; its loss and gradient norm as given."""
  state = method.init(3)
  for step in range(3):
    extras = _extras(step, present=(1.0, 0.0, 1.0))
    losses_k = extras.pop("losses_k").at[1].set(absent_loss)
    weights_k, state = method.update(losses_k, state, **extras)
    if method.observe is not None:
      state = method.observe(jnp.array([0.5, absent_norm, 1.0]), state, losses_k=losses_k,
                             weights_k=weights_k, **extras)
  return weights_k


@pytest.mark.parametrize("name", [n for n in weighting.names() if n not in _SAME_DRAWS])
def test_absent_task_does_not_steer_the_weights(name):
  method = _method(name)
  weights_k = _run_absent(method, 1.0, 1.0)
  wild_k = _run_absent(method, 1e6, 1e6)
  assert np.all(np.isfinite(wild_k))
  np.testing.assert_allclose(np.asarray(wild_k)[[0, 2]], np.asarray(weights_k)[[0, 2]],
                             rtol=1e-6)


def test_every_method_is_registered():
  assert set(weighting.names()) == {
      "equal", "static", "norm_ratio", "loss_sigmoid", "gradnorm", "dwa", "uncertainty",
      "rlw", "famo", "gls", "pcgrad", "mgda", "mgda_ub", "cagrad", "imtl_g",
      "aligned_mtl", "nash_mtl", "gradvac", "graddrop", "upgrad", "task_rms", "task_clip",
      "dualproj", "config", "fairgrad", "krum", "trimmed_mean", "modo", "sdmgrad", "cr_mogm",
      "imtl_l", "scale_invariant", "excess_mtl", "moco", "db_mtl", "stch"}


def test_spec_arguments_reach_the_method():
  method = weighting.from_spec("cagrad(c=0.0, rescale=0)", num_tasks=2)
  update, _ = method.update({"w": jnp.array([[1.0, 0.0], [0.0, 2.0]])}, method.init(2))
  np.testing.assert_allclose(update["w"], [0.5, 1.0], atol=1e-6)  # c = 0: the mean
  with pytest.raises(ValueError, match="has no argument 'alpha'"):
    weighting.from_spec("cagrad(alpha=0.4)", num_tasks=2)
  with pytest.raises(ValueError, match="rescale must be 0, 1 or 2"):
    weighting.from_spec("cagrad(rescale=3)", num_tasks=2)
  with pytest.raises(ValueError, match="unknown optimizer 'adamw'"):
    weighting.from_spec("gradnorm(optimizer='adamw')", num_tasks=2)
  with pytest.raises(ValueError, match="unknown normalization 'max'"):
    weighting.from_spec("mgda(normalization='max')", num_tasks=2)


def test_random_methods_need_rng():
  method = weighting.from_spec("pcgrad", num_tasks=2)
  with pytest.raises(ValueError, match="'pcgrad' draws random numbers: pass rng="):
    method.update({"w": jnp.ones((2, 3))}, method.init(2))

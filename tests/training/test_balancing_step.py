"""The train step with every kind of balancing method, against the per-task reference."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtl_jax import weighting
from mtl_jax.training import TrainState, make_train_step, task_losses
from mtl_jax.training.step import balancing_rng
from mtl_jax.weighting import diagnostics, linalg
from mtl_jax.promotion import standard_promotion

from helpers import (NO_DROPOUT, assert_trees_close, per_task_gradients,
                     two_task_batch as batch, two_task_model)

LEARNING_RATE = 0.1
SGD = standard_promotion(optax.sgd(LEARNING_RATE))


def _step(the_model, method, params, the_batch, rng, **options):
  """One eager SGD step (no compilation: the tiny model runs op by op)."""
  state = TrainState.create(params, SGD, method.init(2), jax.random.PRNGKey(1))
  return make_train_step(the_model, method, SGD, **options)(state, the_batch, rng)


def _sgd(params, grads):
  return jax.tree.map(lambda p, g: p - LEARNING_RATE * g, params, grads)


@pytest.mark.parametrize("mode", [None, "representation", "last_layer", "full"])
def test_loss_weighting_is_exact_in_every_mode(tiny_setup, mode):
  # Uncertainty weighting reads only losses: every mode takes the same step.
  the_model, params, the_batch, rng, expected = tiny_setup
  method = weighting.from_spec("uncertainty(optimizer='sgd', learning_rate=0.5)", num_tasks=2)
  options = {} if mode is None else {"gradient_mode": mode, "diagnostics": True}
  state, metrics = _step(the_model, method, params, the_batch, rng, **options)
  weights_k = np.ones(2)  # exp(-0) before the first log-variance step
  np.testing.assert_allclose(metrics["weights"], weights_k)
  grads = {"encoder": linalg.combine(jnp.asarray(weights_k), expected["encoder"]),
           "heads": linalg.combine(jnp.asarray(weights_k), expected["heads"])}
  assert_trees_close(state.params, _sgd(params, grads))
  # The log-variances stepped on 1 - exp(-s) L = 1 - L.
  np.testing.assert_allclose(state.weighting_state.log_vars_k,
                             -0.5 * (1.0 - np.asarray(metrics["losses"])), rtol=1e-6)
  if mode is not None:
    np.testing.assert_allclose(np.diagonal(metrics["grad_cosines"]), [1.0, 1.0], rtol=1e-5)


GRAM_METHODS = ["pcgrad", "mgda", "cagrad", "imtl_g", "aligned_mtl", "nash_mtl", "gradvac",
                "upgrad", "graddrop", "task_rms", "task_rms(per='tensor')",
                "task_clip(max_norm=0.01)", "dualproj", "config", "fairgrad", "modo",
                "sdmgrad", "cr_mogm", "excess_mtl", "moco", "db_mtl"]  # krum, trimmed_mean: 3 tasks


@pytest.mark.parametrize("name", GRAM_METHODS)
def test_aggregation_step_applies_the_method_to_the_task_gradients(tiny_setup, name):
  the_model, params, the_batch, rng, expected = tiny_setup
  method = weighting.from_spec(name, num_tasks=2, shared_shapes=params["encoder"])
  state, metrics = _step(the_model, method, params, the_batch, rng, gradient_mode="full")
  losses_k = np.asarray(metrics["losses"])
  update, _ = method.update(expected["encoder"], method.init(2), rng=balancing_rng(rng),
                            present_k=jnp.ones(2), losses_k=jnp.asarray(losses_k),
                            step=jnp.int32(0))
  # Shared part: the method's update; heads: their own task's gradient.
  grads = {"encoder": update, "heads": linalg.combine(jnp.ones(2), expected["heads"])}
  assert_trees_close(state.params, _sgd(params, grads), atol=1e-5)


@pytest.fixture(scope="module")
def wide_vocab_setup():
  """`tiny_setup` with a 100-row word table: more rows than the batch's 64 tokens, so the
  Gram-based methods keep the table's per-task gradients as the batch's rows."""
  the_model = two_task_model(NO_DROPOUT.replace(vocab_size=100))
  params = the_model.init(jax.random.PRNGKey(0))
  the_batch, rng = batch(), jax.random.PRNGKey(3)
  return the_model, params, the_batch, rng, per_task_gradients(the_model, params, the_batch, rng)


@pytest.mark.parametrize("name", ["pcgrad", "mgda", "upgrad", "task_clip(max_norm=0.01)",
                                  "graddrop"])
def test_compact_word_rows_give_the_dense_step(wide_vocab_setup, name):
  test_aggregation_step_applies_the_method_to_the_task_gradients(wide_vocab_setup, name)


@pytest.mark.parametrize("spec, options, probe", [
    # MGDA-UB: the min-norm point of the representation gradients (auto mode).
    ("mgda_ub", {}, lambda grads: grads["layer_1"]["output_norm"]["bias"]),
    ("mgda", {"gradient_mode": "last_layer"}, lambda grads: grads["layer_1"]),
])
def test_coefficients_are_found_where_the_mode_probes(tiny_setup, spec, options, probe):
  the_model, params, the_batch, rng, expected = tiny_setup
  method = weighting.from_spec(spec, num_tasks=2)
  state, metrics = _step(the_model, method, params, the_batch, rng, diagnostics=True,
                         **options)
  gram_kk = linalg.gram(probe(expected["encoder"]))
  coeffs_k = linalg.min_norm_simplex(gram_kk, jnp.ones(2))
  np.testing.assert_allclose(metrics["weights"], coeffs_k, rtol=1e-4)
  np.testing.assert_allclose(metrics["grad_cosines"], linalg.cosines_from_gram(gram_kk),
                             rtol=1e-4, atol=1e-6)
  grads = {"encoder": linalg.combine(coeffs_k, expected["encoder"]),
           "heads": linalg.combine(jnp.ones(2), expected["heads"])}
  assert_trees_close(state.params, _sgd(params, grads), atol=1e-5)


def test_gradnorm_learns_from_the_last_layer_norms_of_the_step(tiny_setup):
  the_model, params, the_batch, rng, expected = tiny_setup
  method = weighting.from_spec("gradnorm(optimizer='sgd', learning_rate=0.1)", num_tasks=2)
  state, metrics = _step(the_model, method, params, the_batch, rng)  # auto: last_layer
  # The step used the initial weights (1, 1) ...
  np.testing.assert_allclose(metrics["weights"], [1.0, 1.0])
  grads = {"encoder": linalg.combine(jnp.ones(2), expected["encoder"]),
           "heads": linalg.combine(jnp.ones(2), expected["heads"])}
  assert_trees_close(state.params, _sgd(params, grads), atol=1e-5)
  # ... and learned from the norms of the last layer's per-task gradients.
  losses_k = jnp.asarray(metrics["losses"])
  reference_state = method.update(losses_k, method.init(2))[1]
  reference_state = method.observe(diagnostics.gradient_norms(expected["encoder"]["layer_1"]),
                                   reference_state, losses_k=losses_k)
  assert_trees_close(state.weighting_state, reference_state)


def test_full_mode_diagnostics_are_the_task_gradient_cosines(tiny_setup):
  the_model, params, the_batch, rng, expected = tiny_setup
  method = weighting.from_spec("equal", num_tasks=2)
  _, metrics = _step(the_model, method, params, the_batch, rng, gradient_mode="full",
                     diagnostics=True)
  np.testing.assert_allclose(metrics["grad_cosines"],
                             diagnostics.gradient_cosines(expected["encoder"]), rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_allclose(metrics["grad_norms"],
                             diagnostics.gradient_norms(expected["encoder"]), rtol=1e-4)


@pytest.mark.parametrize("name", ["mgda", "graddrop"])
def test_absent_task_leaves_the_update_to_the_others(tiny_setup, name):
  the_model, params, the_batch, rng, _ = tiny_setup
  the_batch = {task: dict(values) for task, values in the_batch.items()}
  the_batch["ner"]["task_present"] = np.float32(0.0)
  method = weighting.from_spec(name, num_tasks=2)
  state, metrics = _step(the_model, method, params, the_batch, rng, gradient_mode="full")
  jax.tree.map(np.testing.assert_array_equal, state.params["heads"]["ner"],
               params["heads"]["ner"])
  # With one task left, MGDA and GradDrop take that task's own gradient.
  news_grads = jax.grad(lambda p: reference_losses(the_model, p, the_batch, rng)[0])(params)
  assert_trees_close(state.params["encoder"], _sgd(params, news_grads)["encoder"], atol=1e-5)
  np.testing.assert_array_equal(metrics["weights"][1], 0.0)


def reference_losses(the_model, params, the_batch, rng):
  return task_losses(the_model, params, the_batch, train=True, rng=rng)


def test_gradient_mode_errors_name_the_setting():
  the_model = two_task_model(NO_DROPOUT)
  with pytest.raises(ValueError, match="supports gradient_mode 'full', not 'representation'"):
    make_train_step(the_model, weighting.from_spec("graddrop", num_tasks=2), SGD,
                    gradient_mode="representation")
  with pytest.raises(ValueError, match="supports gradient_mode 'representation', not 'full'"):
    make_train_step(the_model, weighting.from_spec("mgda_ub", num_tasks=2), SGD,
                    gradient_mode="full")
  with pytest.raises(ValueError, match=r"unknown gradient mode 'ful' \(config.balancing"):
    make_train_step(the_model, weighting.from_spec("equal", num_tasks=2), SGD,
                    gradient_mode="ful")


def test_jitted_aggregation_step_compiles_once_and_matches_eager(tiny_setup):
  the_model, params, the_batch, rng, _ = tiny_setup
  method = weighting.from_spec("pcgrad", num_tasks=2)
  step = make_train_step(the_model, method, SGD, gradient_mode="full", diagnostics=True)
  state = TrainState.create(params, SGD, method.init(2), jax.random.PRNGKey(1))
  jitted = jax.jit(step)
  eager_state, eager_metrics = step(state, the_batch, rng)
  jit_state, jit_metrics = jitted(state, the_batch, rng)
  jitted(jit_state, batch(1), jax.random.PRNGKey(4))
  assert jitted._cache_size() == 1
  assert_trees_close(jit_state.params, eager_state.params, atol=1e-5)
  np.testing.assert_allclose(jit_metrics["grad_cosines"], eager_metrics["grad_cosines"],
                             rtol=1e-4, atol=1e-6)

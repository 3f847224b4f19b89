import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtl_jax import weighting
from mtl_jax.training import TrainState, make_train_step, task_losses
from mtl_jax.promotion import standard_promotion

from helpers import tiny_config, two_task_batch, two_task_model

_model = two_task_model
_batch = two_task_batch


def _state(optimizer, method="equal"):
  model = _model()
  balance = weighting.from_spec(method, num_tasks=2)
  params = model.init(jax.random.PRNGKey(0))
  return model, balance, TrainState.create(params, optimizer, balance.init(2),
                                           jax.random.PRNGKey(1))


def test_jit_equals_no_jit():
  optimizer = standard_promotion(optax.adamw(1e-3))
  model, balance, state = _state(optimizer)
  step = make_train_step(model, balance, optimizer)
  rng = jax.random.PRNGKey(5)
  eager_state, eager_metrics = step(state, _batch(), rng)
  jit_state, jit_metrics = jax.jit(step)(state, _batch(), rng)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
               eager_state.params, jit_state.params)
  np.testing.assert_allclose(eager_metrics["losses"], jit_metrics["losses"], rtol=1e-5)


@pytest.mark.parametrize("method, weights", [("equal", [1.0, 1.0]),
                                             ("static(weights=[0.3, 2.0])", [0.3, 2.0])])
def test_weighted_sgd_step_equals_sgd_on_the_weighted_sum(method, weights):
  learning_rate = 0.1
  optimizer = standard_promotion(optax.sgd(learning_rate))
  model, balance, state = _state(optimizer, method)
  batch, rng = _batch(), jax.random.PRNGKey(7)
  new_state, metrics = jax.jit(make_train_step(model, balance, optimizer))(
      state, batch, rng)

  def weighted_sum(params):
    losses = task_losses(model, params, batch, train=True, rng=rng)
    return jnp.sum(jnp.asarray(weights) * losses)

  grads = jax.grad(weighted_sum)(state.params)
  expected = jax.tree.map(lambda p, g: p - learning_rate * g, state.params, grads)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               new_state.params, expected)
  np.testing.assert_allclose(metrics["weights"], weights)


def test_stacked_encoder_pass_equals_one_pass_per_task():
  model = _model()
  params = model.init(jax.random.PRNGKey(0))
  batch = _batch()
  joint = task_losses(model, params, batch, train=False, rng=None)
  for k, name in enumerate(model.task_names):
    alone = model.apply(params, {name: batch[name]}, train=False)[name]
    np.testing.assert_allclose(model.losses({name: alone}, batch)[0], joint[k], rtol=1e-5)


def test_absent_task_does_not_move_its_head():
  optimizer = standard_promotion(optax.sgd(0.1))
  model, balance, state = _state(optimizer)
  batch = _batch()
  batch["ner"]["task_present"] = np.float32(0.0)
  new_state, metrics = make_train_step(model, balance, optimizer)(
      state, batch, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(metrics["weights"], [1.0, 0.0])
  jax.tree.map(np.testing.assert_array_equal, new_state.params["heads"]["ner"],
               state.params["heads"]["ner"])
  assert not np.array_equal(new_state.params["heads"]["news"]["output"]["kernel"],
                            state.params["heads"]["news"]["output"]["kernel"])


def test_logical_axes_cover_every_param():
  model = _model()
  axes = model.logical_axes()
  params = model.init(jax.random.PRNGKey(0))
  is_spec = lambda x: isinstance(x, jax.sharding.PartitionSpec)
  specs, params_leaves = jax.tree.leaves(axes, is_leaf=is_spec), jax.tree.leaves(params)
  assert len(specs) == len(params_leaves)
  assert all(len(s) == p.ndim for s, p in zip(specs, params_leaves))


@pytest.mark.parametrize("method", ["equal", "uncertainty", "pcgrad"])
def test_a_nonfinite_step_changes_only_the_step_counter(method):
  # One weighted backward pass (equal), a weighting with state of its own, and a
  # gradient aggregation: the update is skipped in each, whole.
  optimizer = standard_promotion(optax.adamw(1e-3))
  model, balance, state = _state(optimizer, method)
  step = jax.jit(make_train_step(model, balance, optimizer))
  state, metrics = step(state, _batch(), jax.random.PRNGKey(3))  # moments not zero
  assert int(metrics["skipped"]) == 0
  params = state.params
  bias = params["heads"]["news"]["output"]["bias"]
  poisoned = state.replace(params={**params, "heads": {**params["heads"], "news": {
      **params["heads"]["news"], "output": {**params["heads"]["news"]["output"],
                                            "bias": bias.at[0].set(jnp.inf)}}}})
  after, metrics = step(poisoned, _batch(seed=1), jax.random.PRNGKey(4))
  assert int(metrics["skipped"]) == 1 and not np.isfinite(float(metrics["loss"]))
  assert int(after.step) == int(poisoned.step) + 1
  jax.tree.map(np.testing.assert_array_equal,
               (after.params, after.opt_state, after.weighting_state),
               (poisoned.params, poisoned.opt_state, poisoned.weighting_state))


def test_the_nonfinite_guard_updates_the_state_in_place():
  # A vocabulary large enough that the embedding and its two Adam moments
  # dominate: a guard that selects between an old and a new state after the
  # update holds a new copy of each (temporaries 3.2x the embedding's bytes);
  # the update inside lax.cond writes them in place, leaving the embedding's
  # gradient as the one large temporary.
  optimizer = standard_promotion(optax.adamw(1e-3))
  vocab, width = 20000, 16
  model = _model(tiny_config(vocab_size=vocab))
  balance = weighting.from_spec("equal", num_tasks=2)
  state = jax.eval_shape(lambda: TrainState.create(
      model.init(jax.random.PRNGKey(0)), optimizer, balance.init(2), jax.random.PRNGKey(1)))
  compiled = jax.jit(make_train_step(model, balance, optimizer), donate_argnums=0).lower(
      state, _batch(), jax.random.PRNGKey(2)).compile()
  embedding_bytes = vocab * width * 4
  assert compiled.memory_analysis().temp_size_in_bytes < 1.5 * embedding_bytes

"""Adapters over a frozen encoder: only adapters and heads move, and they are saved alone."""

import jax
import numpy as np
import pytest

from mtl_jax import sharing, weighting
from mtl_jax.training import TrainState, make_train_step
from mtl_jax.training.optimizer import make_optimizer

from helpers import task_heads, tiny_config
OPTIMIZER = dict(learning_rate=1e-2, warmup_steps=0, schedule="constant",
                 weight_decay=0.1, clip_norm=1.0, b1=0.9, b2=0.999, eps=1e-8)


def _model():
  return sharing.AdapterModel(tiny_config(), task_heads(("ner", "news")),
                              size=4, placement="houlsby", freeze_encoder=True)


@pytest.fixture(scope="module")
def trained(two_task_batch):
  """Three AdamW steps (weight decay on) of adapters over a frozen encoder."""
  model = _model()
  optimizer, _ = make_optimizer(OPTIMIZER, total_steps=3, frozen=model.frozen_keys)
  balance = weighting.from_spec("equal", num_tasks=2)
  initial = model.init(jax.random.key(0))
  state = TrainState.create(jax.tree.map(np.array, initial), optimizer, balance.init(2),
                            jax.random.key(1))
  step = jax.jit(make_train_step(model, balance, optimizer))
  for s in range(3):
    state, metrics = step(state, two_task_batch(s), jax.random.key(s))
  return model, initial, state, metrics


def test_frozen_encoder_is_bit_identical_and_the_rest_trains(trained):
  _, initial, state, metrics = trained
  jax.tree.map(np.testing.assert_array_equal, state.params["encoder"], initial["encoder"])
  for entry in ("adapters", "heads"):
    moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), state.params[entry],
                         initial[entry])
    assert all(jax.tree.leaves(moved)), entry
  assert np.isfinite(metrics["grad_norm"])


def test_frozen_encoder_has_no_optimizer_state(trained):
  model, initial, state, _ = trained
  sizes = lambda tree: sum(np.size(x) for x in jax.tree.leaves(tree))
  trainable = sizes(sharing.trainable_params(model, initial))
  # Adam's two moments of the trained params only (plus scalar counts).
  assert sizes(state.opt_state) < 2 * trainable + 16 < sizes(initial)


def test_saved_alone_and_loaded_back_onto_the_encoder(trained, tmp_path):
  model, initial, state, _ = trained
  path = str(tmp_path / "trainable.safetensors")
  sharing.save_trainable(path, model, state.params)
  loaded = sharing.load_trainable(path, model)
  assert sorted(loaded) == ["adapters", "heads"]
  restored = model.with_encoder(loaded, initial["encoder"])
  jax.tree.map(np.testing.assert_array_equal, restored, jax.device_get(state.params))
  other = sharing.AdapterModel(tiny_config(), model.tasks, size=8)
  with pytest.raises(ValueError, match="has shape"):
    sharing.load_trainable(path, other)

"""The same train steps on data-parallel, FSDP and tensor-parallel meshes as on one device."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from mtl_jax import sharding, weighting
from mtl_jax.config import default_config
from mtl_jax.training import TrainState, make_optimizer, make_train_step
from mtl_jax.training.nonfinite import NonFiniteCounter
from mtl_jax.training.sharded import create_state, jit_loop_step

from helpers import tiny_config, two_task_model

# Sizes every mesh axis below divides (8 rows per task, 4 heads, embed 16,
# mlp 32, vocab 32), so each rule really shards.
TINY = tiny_config(vocab_size=32, num_layers=1, num_heads=4)
STEPS = 3
MESHES = {"data": {"data": 8}, "fsdp": {"fsdp": 8}, "tensor": {"data": 2, "model": 4}}


def _model():
  return two_task_model(TINY)


def _train(mesh_shape, make_batch):
  """STEPS AdamW steps (dropout on) on a mesh: (initial state, losses per step, final state)."""
  layout = sharding.Layout(sharding.make_mesh(mesh_shape))
  model = _model()
  optimizer_config = default_config().optimizer
  optimizer_config.learning_rate = 1e-3
  optimizer, _ = make_optimizer(optimizer_config, total_steps=10)
  balance = weighting.from_spec("equal", num_tasks=2)

  def init(pretrained=None):
    del pretrained
    return TrainState.create(model.init(jax.random.PRNGKey(0)), optimizer,
                             balance.init(2), jax.random.PRNGKey(1))

  abstract = jax.eval_shape(init)
  shardings = layout.state_shardings(abstract, model.logical_axes())
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          abstract, shardings)
  with layout.activate():
    state = create_state(init, abstract, layout)
    initial = jax.tree.map(lambda x: x.copy(), state)  # `state` is donated below
    step = jit_loop_step(make_train_step(model, balance, optimizer), abstract,
                          layout)
    counter = NonFiniteCounter(0, put=layout.put_replicated)
    losses = []
    for i in range(STEPS):
      state, counter.counts, metrics = step(state, counter.counts,
                                            layout.put_batch(make_batch(i, b=8, vocab=32)))
      losses.append(np.asarray(metrics["losses"]))
  return initial, losses, state


@pytest.fixture(scope="module")
def single_device(two_task_batch):
  return _train({"data": 1}, two_task_batch)


@pytest.fixture(scope="module")
def sharded(two_task_batch):
  cache = {}

  def get(name):
    if name not in cache:
      cache[name] = _train(MESHES[name], two_task_batch)
    return cache[name]

  return get


@pytest.mark.parametrize("mesh", list(MESHES))
def test_sharded_run_equals_the_single_device_run(mesh, single_device, sharded):
  _, expected_losses, expected = single_device
  _, losses, state = sharded(mesh)
  np.testing.assert_allclose(np.stack(losses), np.stack(expected_losses), atol=1e-5)
  assert int(state.step) == STEPS
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b),
                                                       atol=1e-5),
               state.params, expected.params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b),
                                                       atol=1e-5),
               state.opt_state, expected.opt_state)


def _bytes_per_device(tree):
  per_device = {}
  for leaf in jax.tree.leaves(tree):
    for shard in leaf.addressable_shards:
      per_device[shard.device] = per_device.get(shard.device, 0) + shard.data.nbytes
  return per_device


@pytest.mark.parametrize("part", ["params", "opt_state"])
@pytest.mark.parametrize("when", ["initial", "after steps"])
def test_fsdp_puts_an_eighth_of_the_state_on_each_device(part, when, sharded):
  initial, _, final = sharded("fsdp")
  tree = getattr(initial if when == "initial" else final, part)
  leaves = jax.tree.leaves(tree)
  total = sum(leaf.nbytes for leaf in leaves)
  replicated = sum(leaf.nbytes for leaf in leaves if leaf.sharding.is_fully_replicated)
  # Only biases, the heads' small matrices and step counts stay whole.
  assert replicated < 0.1 * total
  per_device = _bytes_per_device(tree)
  assert len(per_device) == 8
  assert max(per_device.values()) <= total / 8 + replicated


def test_each_mesh_lays_out_the_params_as_its_rules_say(sharded):
  spec = lambda leaf: leaf.sharding.spec
  layer = lambda state: state.params["encoder"]["layer_0"]
  data = layer(sharded("data")[2])
  assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(data))
  tensor = layer(sharded("tensor")[2])
  assert spec(tensor["attention"]["qkv"]["kernel"]) == P(None, None, "model", None)
  assert spec(tensor["intermediate"]["kernel"]) == P(None, "model")
  assert spec(tensor["output"]["kernel"]) == P("model", None)
  fsdp = layer(sharded("fsdp")[2])
  assert spec(fsdp["intermediate"]["kernel"]) == P("fsdp", None)
  assert spec(fsdp["attention"]["qkv"]["kernel"]) == P("fsdp", None, None, None)

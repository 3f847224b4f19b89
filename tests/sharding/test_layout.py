"""Meshes from config, logical-axis rules, state and batch layouts (8 emulated devices)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, PartitionSpec as P

from mtl_jax import sharding
from mtl_jax.config import default_config, resolve
from mtl_jax.training import TrainState


def _layout(rules=sharding.DEFAULT_RULES, **shape):
  return sharding.Layout(sharding.make_mesh(shape), rules)


@pytest.mark.parametrize("shape, sizes", [
    ({"data": -1}, (8, 1, 1)),
    ({"data": -1, "model": 2}, (4, 1, 2)),
    ({"data": 2, "fsdp": -1, "model": 2}, (2, 2, 2)),
    ({"fsdp": 8}, (1, 8, 1)),
    ({"data": 1}, (1, 1, 1)),
])
def test_mesh_shape_fills_the_minus_one_axis(shape, sizes):
  assert sharding.mesh_shape(shape, 8) == sizes


@pytest.mark.parametrize("shape, message", [
    ({"data": -1, "fsdp": -1}, "at most one axis may be -1"),
    ({"data": -1, "model": 3}, "not a multiple"),
    ({"data": 16}, "needs 16 devices"),
    ({"dta": 2}, "unknown axis 'dta'"),
])
def test_bad_mesh_shapes_are_clear_errors(shape, message):
  with pytest.raises(ValueError, match=message):
    sharding.mesh_shape(shape, 8)


def test_mesh_axes_are_auto_and_a_smaller_mesh_uses_the_first_devices():
  mesh = sharding.make_mesh({"data": 2, "model": 2})
  assert mesh.axis_names == sharding.MESH_AXES
  assert all(t == AxisType.Auto for t in mesh.axis_types)
  assert mesh.devices.size == 4
  assert set(mesh.devices.flat) <= set(jax.devices())


def test_layout_from_the_default_config_survives_a_json_round_trip():
  config = resolve(json.loads(json.dumps(default_config().to_dict())))
  layout = sharding.Layout.from_config(config.mesh)
  assert layout.rules == sharding.DEFAULT_RULES
  assert layout.mesh.shape == {"data": 8, "fsdp": 1, "model": 1}
  assert layout.batch_parallelism == 8


def test_rules_naming_an_unknown_mesh_axis_fail():
  with pytest.raises(ValueError, match="names mesh axis 'modle'"):
    sharding.normalize_rules([("mlp", "modle")])


def test_specs_follow_the_rules_and_leave_indivisible_dimensions_whole():
  layout = _layout(data=2, fsdp=2, model=2)
  assert layout.spec(("embed", "mlp"), (16, 32)) == P("fsdp", "model")
  assert layout.spec(("vocab", "embed"), (31, 16)) == P(None, "fsdp")  # 31 % 2 != 0
  assert layout.spec(("heads", "kv"), (3, 8)) == P(None, None)
  assert layout.spec(("batch", None), (8, 5)) == P(("data", "fsdp"), None)
  # 6 rows cannot split 4 ways: keep the longest prefix of the axes that divides.
  assert layout.spec(("batch", None), (6, 5)) == P("data", None)
  assert layout.spec(("labels",), (4,)) == P(None)  # no rule: replicated


def test_state_shardings_mirror_the_params_in_optimizer_and_balancing_state():
  layout = _layout(fsdp=4, model=2)
  params = {"dense": {"kernel": jnp.zeros((16, 32)), "bias": jnp.zeros((32,))}}
  axes = {"dense": {"kernel": P("embed", "mlp"), "bias": P("mlp")}}
  per_task = jax.tree.map(lambda p: jnp.zeros((3,) + p.shape), params)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                     opt_state=(jnp.zeros(()), params, params),
                     weighting_state={"ema_kp": per_task, "losses_k": jnp.zeros((3,))},
                     rng=jax.random.PRNGKey(0))
  shardings = layout.state_shardings(jax.eval_shape(lambda: state), axes)
  spec = lambda s: s.spec
  assert spec(shardings.params["dense"]["kernel"]) == P("fsdp", "model")
  assert spec(shardings.params["dense"]["bias"]) == P("model")
  assert spec(shardings.opt_state[1]["dense"]["kernel"]) == P("fsdp", "model")
  assert spec(shardings.opt_state[0]) == P()
  assert spec(shardings.weighting_state["ema_kp"]["dense"]["kernel"]) == P(None, "fsdp",
                                                                           "model")
  assert spec(shardings.weighting_state["losses_k"]) == P()
  assert spec(shardings.step) == P() and spec(shardings.rng) == P()


def test_put_batch_gives_each_device_its_rows():
  layout = _layout(data=4, fsdp=2)
  batch = {"news": {"input_ids": np.arange(8 * 3).reshape(8, 3).astype(np.int32),
                    "task_present": np.float32(1.0)}}
  placed = layout.put_batch(batch)
  ids = placed["news"]["input_ids"]
  assert ids.sharding.spec == P(("data", "fsdp"), None)
  assert {shard.data.shape for shard in ids.addressable_shards} == {(1, 3)}
  np.testing.assert_array_equal(ids, batch["news"]["input_ids"])
  assert placed["news"]["task_present"].sharding.is_fully_replicated


def test_full_mode_per_task_gradients_are_laid_out_by_the_rules(two_task_batch):
  """The train step's per-task gradients: task axis, then each parameter's own layout."""
  from helpers import two_task_model
  from mtl_jax.training import gradients

  model = two_task_model()
  params = model.init(jax.random.PRNGKey(0))
  layout = _layout((("task", "data"), ("mlp", "model"), ("embed", None)), data=2, model=4)

  def per_task(params, batch):
    return gradients.task_gradients(model, params, batch, None, mode="full",
                                    train=False).shared_grads_k

  batch = two_task_batch()
  reference = per_task(params, batch)  # no active layout: unconstrained
  with layout.activate():  # active while the step is traced
    grads_k = jax.jit(per_task)(params, batch)
  kernel = grads_k["layer_0"]["intermediate"]["kernel"]  # axes (embed, mlp)
  assert kernel.shape[0] == 2 and kernel.sharding.spec == P("data", None, "model")
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               grads_k, reference)


def test_compact_word_rows_keep_their_row_axis_whole(two_task_batch):
  """Gram-based methods' per-task word-table rows: the task axis by the rules, rows whole
  (a vocabulary rule does not apply to them), the combined table laid out as the table."""
  from helpers import NO_DROPOUT, two_task_model
  from mtl_jax.training import gradients

  model = two_task_model(NO_DROPOUT.replace(vocab_size=100))  # 100 rows > 64 tokens
  params = model.init(jax.random.PRNGKey(0))
  layout = _layout((("task", "data"), ("vocab", "model"), ("embed", None)), data=2, model=4)
  coeffs_k = jnp.array([0.3, 1.2])

  def probes_and_sum(params, batch):
    grads = gradients.task_gradients(model, params, batch, None, mode="full", train=False,
                                     per_task_grads=False)
    return grads.probes_k, grads.shared(coeffs_k)

  batch = two_task_batch()
  reference = probes_and_sum(params, batch)
  with layout.activate():
    probes_k, summed = jax.jit(probes_and_sum)(params, batch)
  rows_k = probes_k["embeddings"]["word"]["embedding"]
  spec = tuple(rows_k.sharding.spec)  # trailing unsharded axes may be left out
  assert rows_k.shape == (2, 64, 16) and spec[0] == "data" and not any(spec[1:])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               (probes_k, summed), reference)


def test_constrain_lays_out_the_task_axis_of_per_task_gradients_by_the_rules():
  rules = (("task", "data"), ("mlp", "model"))
  layout = _layout(rules, data=4, model=2)
  axes = {"kernel": P("embed", "mlp")}
  grads_kp = {"kernel": jnp.ones((4, 16, 32))}

  def combine(grads_kp):
    grads_kp = sharding.constrain(grads_kp, sharding.task_axes(axes))
    return jax.tree.map(lambda g: g * 2.0, grads_kp)

  assert combine(grads_kp)["kernel"].sharding.is_fully_replicated  # no layout: no-op
  with layout.activate():  # active while the step is traced
    out = jax.jit(combine)(grads_kp)["kernel"]
  assert out.sharding.spec == P("data", None, "model")
  assert sharding.active_layout() is None

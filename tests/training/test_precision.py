"""Mixed precision: `encoder.dtype='bfloat16'` computes the encoder in bf16, the rest in fp32."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtl_jax import weighting
from mtl_jax.training import TrainState, make_train_step, task_losses
from mtl_jax.promotion import standard_promotion

from helpers import tiny_config, two_task_model


def _model(dtype):
  return two_task_model(tiny_config(num_layers=1, dtype=dtype))


def test_bf16_encoder_fp32_heads_losses_params_and_optimizer_state(two_task_batch):
  model, batch = _model("bfloat16"), two_task_batch()
  params = model.init(jax.random.PRNGKey(0))
  assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
  hidden = jax.eval_shape(lambda p: model.encode(p, batch, train=False), params)
  assert {h.dtype for h in hidden.values()} == {jnp.dtype(jnp.bfloat16)}
  logits = jax.eval_shape(lambda p: model.apply(p, batch, train=False), params)
  assert {x.dtype for x in logits.values()} == {jnp.dtype(jnp.float32)}

  optimizer = standard_promotion(optax.adamw(1e-3))
  balance = weighting.from_spec("equal", num_tasks=2)
  state = TrainState.create(params, optimizer, balance.init(2), jax.random.PRNGKey(1))
  new_state, metrics = jax.eval_shape(make_train_step(model, balance, optimizer),
                                      state, batch, jax.random.PRNGKey(2))
  for leaf in jax.tree.leaves((new_state.params, new_state.opt_state)):
    assert leaf.dtype in (jnp.float32, jnp.int32)
  assert metrics["losses"].dtype == jnp.float32 and metrics["grad_norm"].dtype == jnp.float32


def test_bf16_losses_are_close_to_fp32_losses(two_task_batch):
  batch = two_task_batch()
  params = _model("float32").init(jax.random.PRNGKey(0))  # the same params for both
  losses = {dtype: jax.jit(lambda p, m=_model(dtype): task_losses(
      m, p, batch, train=False, rng=None))(params) for dtype in ("float32", "bfloat16")}
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=2e-2)
  assert not np.array_equal(losses["bfloat16"], losses["float32"])  # bf16 really ran

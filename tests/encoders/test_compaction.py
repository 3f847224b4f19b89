"""Token compaction: the encoder on the real tokens only is the padded encoder's function."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.encoders import compaction
from mtl_jax.encoders.bert import Encoder

from helpers import tiny_config

MASK = np.array([[1, 1, 1, 0],
                 [0, 0, 0, 0],   # an all-padding row (an absent task's)
                 [1, 1, 0, 0]])


def test_the_index_maps_real_positions_to_rows_in_order_and_back():
  index = compaction.token_index(jnp.asarray(MASK), capacity=7)
  # Real positions of the flattened [3 * 4] mask; spare rows point past its end.
  np.testing.assert_array_equal(index.position_c, [0, 1, 2, 8, 9, 12, 12])
  np.testing.assert_array_equal(index.row_n, [0, 1, 2, 7, 7, 7, 7, 7, 3, 4, 7, 7])


def test_to_compact_and_to_padded_and_their_gradients():
  x = jnp.arange(3 * 4 * 2, dtype=jnp.float32).reshape(3, 4, 2) + 1
  index = compaction.token_index(jnp.asarray(MASK), capacity=6)
  x_c = compaction.to_compact(x, index)
  np.testing.assert_array_equal(x_c, np.concatenate([x[0, :3], x[2, :2], np.zeros((1, 2))]))
  back = compaction.to_padded(x_c, index, MASK.shape)
  np.testing.assert_array_equal(back, np.asarray(x) * MASK[..., None])
  # The gathers' hand-written gradients equal autodiff's scatter-add of a plain gather.
  flat = np.flatnonzero(MASK)
  w_c = jax.random.normal(jax.random.key(0), x_c.shape)
  w_bl = jax.random.normal(jax.random.key(1), x.shape)
  grad = jax.grad(lambda x: jnp.sum(compaction.to_compact(x, index) * w_c))(x)
  expected = jax.grad(lambda x: jnp.sum(x.reshape(12, 2)[flat] * w_c[:5]))(x)
  np.testing.assert_array_equal(grad, expected)
  grad = jax.grad(lambda x_c: jnp.sum(compaction.to_padded(x_c, index, MASK.shape) * w_bl))(x_c)
  expected = np.concatenate([w_bl.reshape(12, 2)[flat], np.zeros((1, 2))])
  np.testing.assert_array_equal(grad, expected)


def _inputs(seed=0, b=5, l=12):
  rng = np.random.default_rng(seed)
  lengths = np.array([l, 3, 7, 0, 1])[:b]
  mask = (np.arange(l)[None] < lengths[:, None]).astype(np.int32)
  ids = rng.integers(1, 30, (b, l)) * mask
  types = rng.integers(0, 2, (b, l)) * mask
  return jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(types)


@pytest.mark.parametrize("attention_impl", ["xla", "auto"])
@pytest.mark.parametrize("capacity", [23, 32])  # exactly the real tokens; spare rows
def test_the_compact_encoder_is_the_padded_one_at_real_tokens(attention_impl, capacity):
  config = tiny_config(hidden_dropout=0.0, attention_dropout=0.0,
                       attention_impl=attention_impl)
  encoder = Encoder(config)
  ids, mask, types = _inputs()
  assert int(mask.sum()) == 23
  params = encoder.init(jax.random.key(0), ids, mask, types)
  real = mask[..., None].astype(jnp.float32)
  weights = jax.random.normal(jax.random.key(1), (*ids.shape, config.hidden_size)) * real

  def loss(params, capacity):
    hidden = encoder.apply(params, ids, mask, types, capacity=capacity)
    return jnp.sum(hidden * weights), hidden

  (padded_loss, padded), padded_grads = jax.value_and_grad(loss, has_aux=True)(params, None)
  (compact_loss, compact), compact_grads = jax.value_and_grad(loss, has_aux=True)(
      params, capacity)
  np.testing.assert_allclose(compact * real, padded * real, atol=1e-5)
  np.testing.assert_array_equal(compact * (1 - real), 0.0)  # zeros at padding
  np.testing.assert_allclose(compact_loss, padded_loss, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
               compact_grads, padded_grads)


def test_without_embeddings_the_input_states_are_compacted_too():
  config = tiny_config(hidden_dropout=0.0, attention_dropout=0.0)
  encoder = Encoder(config, layers=(1,), embeddings=False)
  _, mask, _ = _inputs()
  states = jax.random.normal(jax.random.key(2), (*mask.shape, config.hidden_size))
  params = encoder.init(jax.random.key(0), states, mask)
  padded = encoder.apply(params, states, mask)
  compact = encoder.apply(params, states, mask, capacity=24)
  real = mask[..., None].astype(jnp.float32)
  np.testing.assert_allclose(compact * real, padded * real, atol=1e-5)


def test_with_dropout_the_compact_encoder_drops_and_keeps_zeros_at_padding():
  """Dropout draws its masks over the buffer's shape: another draw, the same rate."""
  encoder = Encoder(tiny_config())
  ids, mask, types = _inputs()
  params = encoder.init(jax.random.key(0), ids, mask, types)
  hidden = encoder.apply(params, ids, mask, types, deterministic=False, capacity=24,
                         rngs={"dropout": jax.random.key(5)})
  assert np.isfinite(hidden).all()
  np.testing.assert_array_equal(np.asarray(hidden) * (1 - np.asarray(mask)[..., None]), 0.0)
  deterministic = encoder.apply(params, ids, mask, types, capacity=24)
  assert not np.allclose(hidden, deterministic)  # dropout did act

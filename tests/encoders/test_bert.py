import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np
import pytest

from mtl_jax.encoders import Encoder, EncoderConfig

TINY = EncoderConfig(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2,
                     intermediate_size=32, max_position_embeddings=32)


def _init(config=TINY, length=6):
  ids = jnp.ones((2, length), jnp.int32)
  return Encoder(config).init(jax.random.PRNGKey(0), ids, ids, ids)


def test_every_param_has_logical_axis_names():
  boxed = _init()["params"]
  leaves = jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  assert leaves and all(isinstance(x, nn.LogicallyPartitioned) for x in leaves)
  for leaf in leaves:
    assert len(leaf.names) == leaf.value.ndim
  specs = nn.get_partition_spec(boxed)
  assert tuple(specs["embeddings"]["word"]["embedding"]) == ("vocab", "embed")
  assert tuple(specs["layer_0"]["attention"]["qkv"]["kernel"]) == ("embed", "qkv", "heads",
                                                                  "kv")
  assert tuple(specs["layer_1"]["intermediate"]["kernel"]) == ("embed", "mlp")


def test_padding_does_not_change_real_tokens():
  params = nn.unbox(_init())["params"]
  encoder = Encoder(TINY)
  ids = jnp.array([[2, 7, 9, 3]], jnp.int32)
  short = encoder.apply({"params": params}, ids, jnp.ones_like(ids), jnp.zeros_like(ids))
  padded_ids = jnp.array([[2, 7, 9, 3, 0, 0]], jnp.int32)
  mask = jnp.array([[1, 1, 1, 1, 0, 0]], jnp.int32)
  padded = encoder.apply({"params": params}, padded_ids, mask, jnp.zeros_like(padded_ids))
  np.testing.assert_allclose(padded[:, :4], short, atol=1e-5)


def test_dropout_needs_rng_and_is_deterministic_per_key():
  params = nn.unbox(_init())["params"]
  encoder = Encoder(TINY)
  ids = jnp.ones((2, 6), jnp.int32)

  def run(key):
    return encoder.apply({"params": params}, ids, ids, ids, deterministic=False,
                         rngs={"dropout": jax.random.PRNGKey(key)})

  np.testing.assert_array_equal(run(1), run(1))
  assert not np.allclose(run(1), run(2))


def test_too_long_input_is_a_clear_error():
  params = nn.unbox(_init())["params"]
  ids = jnp.ones((1, 40), jnp.int32)
  with pytest.raises(ValueError, match="max_position_embeddings"):
    Encoder(TINY).apply({"params": params}, ids, ids, ids)


def test_config_rejects_indivisible_heads():
  with pytest.raises(ValueError, match="divisible"):
    EncoderConfig(hidden_size=10, num_heads=3)


def test_adding_the_position_rows_has_the_broadcasts_gradient():
  from mtl_jax.encoders.bert import add_to_every_sequence
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(3, 5, 4)), jnp.float32)
  rows = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(3, 5, 4)), jnp.float32)
  ours = jax.grad(lambda x, r: jnp.sum(add_to_every_sequence(x, r) * weights), (0, 1))(x, rows)
  plain = jax.grad(lambda x, r: jnp.sum((x + r[None]) * weights), (0, 1))(x, rows)
  np.testing.assert_array_equal(add_to_every_sequence(x, rows), x + rows[None])
  for a, b in zip(ours, plain):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)

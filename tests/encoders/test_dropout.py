import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.encoders import Encoder, EncoderConfig
from mtl_jax.encoders.dropout import HashDropout, keep_mask

SHAPE = (4, 12, 64, 64)  # ~200k coins


def _mask(key, rate=0.1, shape=SHAPE):
  return np.asarray(keep_mask(jax.random.PRNGKey(key), shape, rate))


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_coins_are_fair_and_independent_of_their_neighbours(rate):
  keep = _mask(0, rate).reshape(-1)
  p = 1.0 - rate
  sigma = np.sqrt(p * (1 - p) / keep.size)
  assert abs(keep.mean() - p) < 5 * sigma
  # Neighbours (along each axis of the flat counter) are independent coins.
  for lag in (1, 64, 4096):
    both = np.mean(keep[:-lag] & keep[lag:])
    assert abs(both - p * p) < 5 * np.sqrt(p * p * (1 - p * p) / keep.size)


def test_masks_are_a_function_of_the_key():
  np.testing.assert_array_equal(_mask(1), _mask(1))
  # Different keys (as make_rng gives each layer and step) agree only by chance.
  agreement = np.mean(_mask(1) == _mask(2))
  assert abs(agreement - (0.9 ** 2 + 0.1 ** 2)) < 0.01
  folded = [np.asarray(keep_mask(jax.random.fold_in(jax.random.PRNGKey(0), i), SHAPE, 0.1))
            for i in range(2)]
  assert abs(np.mean(folded[0] == folded[1]) - 0.82) < 0.01


def test_hash_dropout_keeps_the_expectation_and_is_off_when_deterministic():
  x = jnp.ones(SHAPE)
  module = HashDropout(0.1)
  out = module.apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(3)})
  kept = np.asarray(out) != 0
  np.testing.assert_allclose(np.asarray(out)[kept], 1 / 0.9, rtol=1e-6)
  assert abs(float(out.mean()) - 1.0) < 0.01
  np.testing.assert_array_equal(module.apply({}, x, deterministic=True), x)


@pytest.mark.parametrize("dropout_rng", ["hash", "threefry"])
def test_encoder_dropout_choices_drop_and_agree_without_dropout(dropout_rng):
  config = EncoderConfig(vocab_size=30, hidden_size=16, num_layers=1, num_heads=2,
                         intermediate_size=32, max_position_embeddings=16,
                         dropout_rng=dropout_rng)
  ids = jnp.ones((2, 8), jnp.int32)
  encoder = Encoder(config)
  params = encoder.init(jax.random.PRNGKey(0), ids, ids, ids)
  clean = encoder.apply(params, ids, ids, ids)
  noisy = encoder.apply(params, ids, ids, ids, deterministic=False,
                        rngs={"dropout": jax.random.PRNGKey(1)})
  assert not np.allclose(clean, noisy)
  # The other choice computes the same function without dropout (same params).
  other = "threefry" if dropout_rng == "hash" else "hash"
  reference = Encoder(config.replace(dropout_rng=other)).apply(params, ids, ids, ids)
  np.testing.assert_array_equal(clean, reference)


def test_unknown_dropout_rng_is_rejected():
  with pytest.raises(ValueError, match="dropout_rng"):
    EncoderConfig(dropout_rng="mt19937")

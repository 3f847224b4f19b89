"""Dropout whose mask costs one cheap pass, not a cryptographic RNG per element.

`flax.linen.Dropout` draws every mask element from `jax.random` (threefry),
which XLA's CPU backend computes at about 50x the cost of a plain pass over
the activations: on a MiniLM-sized train step the attention-probability
masks alone cost as much as the attention products. Dropout needs
independent fair coins, not cryptographic strength, so `HashDropout` derives
each element's coin from a keyed integer hash of its position (two rounds of
the murmur3 finalizer, keyed by 64 bits drawn from the layer's dropout key):
one fused elementwise pass, deterministic per key, a fresh mask per key and
layer (the key comes from `make_rng`, as for flax's Dropout).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
import flax.linen as nn


def _fmix32(h: jax.Array) -> jax.Array:
  """murmur3's 32-bit finalizer: a bijection with full avalanche."""
  h = h ^ (h >> 16)
  h = h * np.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * np.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def hash_seeds(key: jax.Array) -> jax.Array:
  """The two uint32 words of `key` that key the hash (what the CPU kernel is given)."""
  return jax.random.bits(key, (2,), jnp.uint32)


def keep_threshold(rate: float) -> np.uint32:
  """An element is kept where its hash is >= this: P(keep) = 1 - rate."""
  return np.uint32(min(round(rate * 2.0**32), 2**32 - 1))


def check_mask_size(size: int) -> None:
  """The hash counts positions in 32 bits."""
  if size >= 2**32:
    raise ValueError(f"dropout mask of {size} elements exceeds the hash's 2**32 counter")


def keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
  """Bernoulli(1 - rate) booleans of `shape`, a pure function of `key`.

  Args:
    key: a `jax.random` key (raw uint32 or typed).
    shape: the mask's shape (fewer than 2**32 elements).
    rate: the probability of dropping an element, in [0, 1).

  Returns:
    bool array, True where the element is kept.
  """
  size = int(np.prod(shape))
  check_mask_size(size)
  k0, k1 = hash_seeds(key)
  position = lax.iota(jnp.uint32, size).reshape(shape)
  # Two keyed rounds: with one, two keys would give shifted copies of one stream.
  h = _fmix32(_fmix32(position * np.uint32(0x9E3779B9) ^ k0) ^ k1)
  return h >= keep_threshold(rate)


def hash_dropout(x: jax.Array, key: jax.Array, rate: float) -> jax.Array:
  """Inverted dropout of x with the `keep_mask` coins of `key`, for 0 <= rate < 1."""
  keep = keep_mask(key, x.shape, rate)
  # One multiply by 0 or 1/(1 - rate), forward and backward (a divide and a
  # select each way cost more on CPU).
  return x * jnp.where(keep, jnp.asarray(1.0 / (1.0 - rate), x.dtype), jnp.zeros((), x.dtype))


class HashDropout(nn.Module):
  """Inverted dropout with `keep_mask` coins (same contract as `nn.Dropout`).

  Attributes:
    rate: the probability of zeroing an element.
    rng_collection: the rng stream the key comes from.
  """

  rate: float
  rng_collection: str = "dropout"

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    if self.rate >= 1.0:
      return jnp.zeros_like(x)
    return hash_dropout(x, self.make_rng(self.rng_collection), self.rate)

"""Token compaction: the encoder's position-wise layers on the real tokens only.

A step pads every row to one length so that the rows (of every task) stack
into one encoder pass; on real multi-task batches most slots are padding
(BENCHMARKS.md, "Padding in multi-task steps": 35% real on the five GLUE
tasks). Everything in a Transformer layer but the attention core works on
each token alone (the QKV, output and feed-forward products, GELU, the layer
norms, dropout), so it can run on a [c, ...] buffer of the real tokens,
where the capacity c (static: one program per capacity) is at least their
count. Only the attention core needs the [b, l] layout: it gets it by one
gather before and gives it back by another after.

Both directions are gathers, forward and backward: the map between real
positions and compact rows is one-to-one, so the transpose of a gather by it
is the gather by its inverse (no scatter, which XLA's CPU backend runs row by
row). Rows and positions outside the map read zeros.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class TokenIndex(NamedTuple):
  """The one-to-one map between a batch's real tokens and the compact rows.

  Attributes:
    position_c: [c] int32, each compact row's position in the flattened
      [b * l] batch, in row-major order; b * l (out of range) for spare rows.
    row_n: [b * l] int32, each position's compact row; c (out of range) for
      padding.
  """

  position_c: jax.Array
  row_n: jax.Array


def token_index(mask_bl: jax.Array, capacity: int) -> TokenIndex:
  """The `TokenIndex` of a padding mask for a buffer of `capacity` rows.

  Args:
    mask_bl: 1 (or True) for real tokens, 0 for padding.
    capacity: the compact rows, at least the real tokens (more are cut off:
      the caller chooses it from the same mask, on the host).

  Returns:
    The map, computed on device from the mask.
  """
  real_n = mask_bl.reshape(-1).astype(bool)
  position_c = jnp.nonzero(real_n, size=capacity, fill_value=real_n.size)[0]
  row_n = jnp.where(real_n, jnp.cumsum(real_n, dtype=jnp.int32) - 1, capacity)
  return TokenIndex(position_c.astype(jnp.int32), row_n.astype(jnp.int32))


def _take_rows(x: jax.Array, index: jax.Array) -> jax.Array:
  return jnp.take(x, index, axis=0, mode="fill", fill_value=0)


@jax.custom_vjp
def _gather_rows(x, index, inverse):
  return _take_rows(x, index)


def _gather_rows_forward(x, index, inverse):
  return _take_rows(x, index), (index, inverse)


def _gather_rows_backward(residuals, g):
  index, inverse = residuals
  return _take_rows(g, inverse), None, None


_gather_rows.defvjp(_gather_rows_forward, _gather_rows_backward)


def to_compact(x_bl: jax.Array, index: TokenIndex) -> jax.Array:
  """The real tokens' rows of `x_bl` [b, l, ...]: [c, ...] (zeros in spare rows)."""
  b, l = x_bl.shape[:2]
  return _gather_rows(x_bl.reshape(b * l, *x_bl.shape[2:]), index.position_c, index.row_n)


def to_padded(x_c: jax.Array, index: TokenIndex, batch_shape: tuple[int, int]) -> jax.Array:
  """The inverse of `to_compact`: [b, l, ...], zeros at padding."""
  return _gather_rows(x_c, index.row_n, index.position_c).reshape(*batch_shape, *x_c.shape[1:])

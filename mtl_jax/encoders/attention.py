"""The attention core, softmax(q k^T / sqrt(k) + padding bias) v, in two implementations.

`"xla"` writes it in jax.numpy and lets XLA compile it (any backend, any
dtype, any sharding). `"cpu_kernel"` is one fused C++ custom call forward
and one backward (`mtl_jax/kernels/attention_cpu.cc`): on XLA's CPU backend
the batched per-head products of the XLA version run at a fraction of the
dense GEMM rate. Both take the encoder's fused projection [b, l, 3, h, k]
and return the context [b, l, h, k], and both drop attention probabilities
with the mask of `dropout.keep_mask` for the same key, so they compute the
same function (tests: values and gradients agree, with and without dropout).
`"auto"` picks the kernel for float32 on a single CPU device when it builds.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.encoders import dropout
from mtl_jax.encoders.config import ATTENTION_IMPLS
from mtl_jax.kernels import native_kernels_apply, native_kernels_available

def padding_bias(mask_bl: jax.Array) -> jax.Array:
  """0 for real keys, the most negative float32 for padding, float32 [b, l].

  An added bias, unlike a select, has an identity gradient and fuses into the
  softmax, which saves a pass over the l x l scores each way.
  """
  return jnp.where(mask_bl, 0.0, jnp.finfo(jnp.float32).min).astype(jnp.float32)


def attention_xla(qkv_bl3hk: jax.Array, mask_bl: jax.Array, dropout_key: jax.Array | None,
                  rate: float, probs_dropout: Callable[[jax.Array], jax.Array] | None = None
                  ) -> jax.Array:
  """The attention core in jax.numpy (see the module docstring for the contract).

  Args:
    qkv_bl3hk: the fused query/key/value projection [b, l, 3, h, k].
    mask_bl: 1 (or True) for real tokens, 0 for padding.
    dropout_key: key of the attention-probability dropout mask; None for none.
    rate: the dropout rate (used with `dropout_key`).
    probs_dropout: applied to the probabilities instead of the hash mask
      (flax's `nn.Dropout` for `dropout_rng="threefry"`).

  Returns:
    The context [b, l, h, k] in the dtype of `qkv_bl3hk`.
  """
  dtype = qkv_bl3hk.dtype
  head_dim = qkv_bl3hk.shape[-1]
  # Scaling the queries (not the l x l scores) is a 4x smaller pass at l=128.
  q_blhk = qkv_bl3hk[:, :, 0] * jnp.asarray(head_dim ** -0.5, dtype)
  k_blhk, v_blhk = qkv_bl3hk[:, :, 1], qkv_bl3hk[:, :, 2]
  scores_bhqs = jnp.einsum("bqhk,bshk->bhqs", q_blhk, k_blhk)
  # float32 softmax for stability.
  probs_bhqs = jax.nn.softmax(scores_bhqs.astype(jnp.float32)
                              + padding_bias(mask_bl)[:, None, None, :], axis=-1).astype(dtype)
  if probs_dropout is not None:
    probs_bhqs = probs_dropout(probs_bhqs)
  elif dropout_key is not None and rate > 0.0:
    probs_bhqs = dropout.hash_dropout(probs_bhqs, dropout_key, rate)
  return jnp.einsum("bhqs,bshk->bqhk", probs_bhqs, v_blhk)


def _kernel_attrs(head_dim: int, rate: float) -> dict:
  # keep_scale and threshold as `dropout.hash_dropout` uses them.
  return dict(scale=np.float32(head_dim ** -0.5), keep_scale=np.float32(1.0 / (1.0 - rate)),
              threshold=dropout.keep_threshold(rate), dropout=rate > 0.0)


def _kernel_forward(qkv, bias, seeds, rate):
  b, l, _, h, k = qkv.shape
  # stats: each query row's score max and inverse softmax denominator, from
  # which the backward recomputes the probabilities (an l x l residual saved).
  ctx, stats = jax.ffi.ffi_call(
      "mtl_attention_forward",
      (jax.ShapeDtypeStruct((b, l, h, k), jnp.float32),
       jax.ShapeDtypeStruct((b, h, l, 2), jnp.float32)),
      vmap_method="sequential")(qkv, bias, seeds, **_kernel_attrs(k, rate))
  return ctx, (qkv, bias, seeds, stats, ctx)


def _kernel_backward(rate, residuals, dctx):
  qkv, bias, seeds, stats, ctx = residuals
  dqkv = jax.ffi.ffi_call(
      "mtl_attention_backward", jax.ShapeDtypeStruct(qkv.shape, jnp.float32),
      vmap_method="sequential")(qkv, bias, seeds, stats, ctx, dctx,
                                **_kernel_attrs(qkv.shape[-1], rate))
  return dqkv, jnp.zeros_like(bias), None


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _kernel_attention(qkv, bias, seeds, rate):
  return _kernel_forward(qkv, bias, seeds, rate)[0]


_kernel_attention.defvjp(_kernel_forward, _kernel_backward)


def attention_cpu_kernel(qkv_bl3hk: jax.Array, mask_bl: jax.Array,
                         dropout_key: jax.Array | None, rate: float) -> jax.Array:
  """The attention core as the fused CPU kernel (float32; same contract as `attention_xla`)."""
  if qkv_bl3hk.dtype != jnp.float32:
    raise ValueError(f"the CPU attention kernel computes float32, got {qkv_bl3hk.dtype}")
  if not native_kernels_available():
    raise RuntimeError("the CPU attention kernel did not build (see the warning above); "
                       "use attention_impl='xla'")
  if dropout_key is None or rate <= 0.0:
    seeds, rate = jnp.zeros((2,), jnp.uint32), 0.0
  else:
    b, l, _, h, _ = qkv_bl3hk.shape
    dropout.check_mask_size(b * h * l * l)
    seeds = dropout.hash_seeds(dropout_key)
  return _kernel_attention(qkv_bl3hk, padding_bias(mask_bl), seeds, float(rate))


def resolve_impl(impl: str, dtype) -> str:
  """The implementation `impl` ("auto", "xla" or "cpu_kernel") stands for here.

  "auto" is the kernel when the computation is float32 on a single CPU device
  (under a mesh XLA partitions its own ops, not a custom call) and the kernel
  builds; "xla" otherwise.
  """
  if impl not in ATTENTION_IMPLS:
    raise ValueError(f"attention_impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
  if impl != "auto":
    return impl
  return "cpu_kernel" if native_kernels_apply(dtype) else "xla"


def dot_product_attention(qkv_bl3hk: jax.Array, mask_bl: jax.Array,
                          dropout_key: jax.Array | None, rate: float,
                          impl: str = "auto") -> jax.Array:
  """The attention core by `impl` (see `resolve_impl`); arguments as `attention_xla`."""
  if resolve_impl(impl, qkv_bl3hk.dtype) == "cpu_kernel":
    return attention_cpu_kernel(qkv_bl3hk, mask_bl, dropout_key, rate)
  return attention_xla(qkv_bl3hk, mask_bl, dropout_key, rate)

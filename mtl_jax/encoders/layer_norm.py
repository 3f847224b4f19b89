"""Layer normalisation with a hand-written backward pass.

The function is `flax.linen.LayerNorm`'s (same parameters `scale` and
`bias`, so checkpoints and the Hugging Face mapping are unchanged), but
autodiff of the mean/variance formula makes XLA's CPU backend run several
passes over the [tokens, hidden] activations in the backward pass. The
closed form

    dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)),  g = dy * scale

needs two row reductions and one elementwise pass, and the forward pass
keeps only x_hat and rstd for it.

Two implementations of that function: `"xla"` (jax.numpy, any backend and
dtype) and `"cpu_kernel"`, one C++ custom call forward and one backward
(`mtl_jax/kernels/layer_norm_cpu.cc`) that visit each row once, where
XLA's CPU backend runs the row reductions as separate slow passes.
`"auto"` picks the kernel for float32 on a single CPU device when it builds.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np

from mtl_jax.encoders.config import NORM_IMPLS
from mtl_jax.kernels import native_kernels_apply, native_kernels_available


def _row(v, ndim):
  """[d] as [1, ..., 1, d] (explicit broadcasting; rank promotion is an error in tests)."""
  return v.reshape((1,) * (ndim - 1) + v.shape)


def _normalize(x, eps):
  x = x.astype(jnp.float32)
  centered = x - jnp.mean(x, axis=-1, keepdims=True)
  rstd = jax.lax.rsqrt(jnp.mean(centered * centered, axis=-1, keepdims=True) + eps)
  return centered * rstd, rstd


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
  """(x - mean) / sqrt(var + eps) * scale + bias over the last axis.

  Statistics are computed in float32 (two-pass variance); the result has
  x's dtype.

  Args:
    x: [..., d] activations.
    scale: [d] gain.
    bias: [d] offset.
    eps: added to the variance.

  Returns:
    The normalised [..., d] array, dtype of x.
  """
  return _forward(x, scale, bias, eps)[0]


def _forward(x, scale, bias, eps):
  x_hat, rstd = _normalize(x, eps)
  return ((x_hat * _row(scale, x.ndim) + _row(bias, x.ndim)).astype(x.dtype),
          (x_hat, rstd, scale))


def _backward(eps, residuals, dy):
  del eps
  x_hat, rstd, scale = residuals
  x_dtype = dy.dtype  # the output's dtype, which is x's
  dy = dy.astype(jnp.float32)
  g = dy * _row(scale, dy.ndim)
  dx = rstd * (g - jnp.mean(g, axis=-1, keepdims=True)
               - x_hat * jnp.mean(g * x_hat, axis=-1, keepdims=True))
  rows = tuple(range(dy.ndim - 1))
  return (dx.astype(x_dtype), jnp.sum(dy * x_hat, axis=rows).astype(scale.dtype),
          jnp.sum(dy, axis=rows).astype(scale.dtype))


layer_norm.defvjp(_forward, _backward)


def _kernel_forward(x, scale, bias, eps):
  rows = x.shape[:-1]
  y, x_hat, rstd = jax.ffi.ffi_call(
      "mtl_layer_norm_forward",
      (jax.ShapeDtypeStruct(x.shape, jnp.float32), jax.ShapeDtypeStruct(x.shape, jnp.float32),
       jax.ShapeDtypeStruct(rows, jnp.float32)),
      vmap_method="sequential")(x, scale, bias, eps=np.float32(eps))
  return y, (x_hat, rstd, scale)


def _kernel_backward(eps, residuals, dy):
  del eps
  x_hat, rstd, scale = residuals
  return jax.ffi.ffi_call(
      "mtl_layer_norm_backward",
      (jax.ShapeDtypeStruct(dy.shape, jnp.float32), jax.ShapeDtypeStruct(scale.shape, jnp.float32),
       jax.ShapeDtypeStruct(scale.shape, jnp.float32)),
      vmap_method="sequential")(dy, x_hat, rstd, scale)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _kernel_layer_norm(x, scale, bias, eps):
  return _kernel_forward(x, scale, bias, eps)[0]


_kernel_layer_norm.defvjp(_kernel_forward, _kernel_backward)


def layer_norm_cpu_kernel(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float
                          ) -> jax.Array:
  """`layer_norm` as the C++ CPU kernel (float32 only; same arguments and result).

  Raises:
    ValueError: an operand is not float32.
    RuntimeError: the native CPU kernels are unavailable.
  """
  if not x.dtype == scale.dtype == bias.dtype == jnp.float32:
    raise ValueError(f"the CPU layer-norm kernel computes float32, got {x.dtype}, "
                     f"{scale.dtype}, {bias.dtype}")
  if not native_kernels_available():
    raise RuntimeError("the CPU layer-norm kernel did not build (see the warning above); "
                       "use norm_impl='xla'")
  return _kernel_layer_norm(x, scale, bias, float(eps))


def resolve_norm_impl(impl: str, dtype) -> str:
  """The implementation `impl` ("auto", "xla" or "cpu_kernel") stands for here.

  "auto" is the kernel when the computation is float32 on a single CPU device
  and the kernels build (`mtl_jax.kernels.native_kernels_apply`); "xla"
  otherwise.
  """
  if impl not in NORM_IMPLS:
    raise ValueError(f"norm_impl must be one of {NORM_IMPLS}, got {impl!r}")
  if impl != "auto":
    return impl
  return "cpu_kernel" if native_kernels_apply(dtype) else "xla"


class LayerNorm(nn.Module):
  """`layer_norm` as a module with `scale` and `bias` params (flax's names).

  Attributes:
    epsilon: added to the variance.
    impl: "auto", "xla" or "cpu_kernel" (see `resolve_norm_impl`).
    scale_init: initialiser of the [d] gain (may carry logical axis names).
    bias_init: initialiser of the [d] offset.
  """

  epsilon: float = 1e-6
  impl: str = "xla"
  scale_init: nn.initializers.Initializer = nn.initializers.ones_init()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = x.shape[-1]
    scale = self.param("scale", self.scale_init, (features,), jnp.float32)
    bias = self.param("bias", self.bias_init, (features,), jnp.float32)
    if resolve_norm_impl(self.impl, x.dtype) == "cpu_kernel":
      return layer_norm_cpu_kernel(x, scale, bias, self.epsilon)
    return layer_norm(x, scale, bias, self.epsilon)

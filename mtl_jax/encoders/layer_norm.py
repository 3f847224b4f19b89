"""Layer normalisation with a hand-written backward pass.

The function is `flax.linen.LayerNorm`'s (same parameters `scale` and
`bias`, so checkpoints and the Hugging Face mapping are unchanged), but
autodiff of the mean/variance formula makes XLA's CPU backend run several
passes over the [tokens, hidden] activations in the backward pass. The
closed form

    dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)),  g = dy * scale

needs two row reductions and one elementwise pass, and the forward pass
keeps only x_hat and rstd for it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import flax.linen as nn


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


class LayerNorm(nn.Module):
  """`layer_norm` as a module with `scale` and `bias` params (flax's names).

  Attributes:
    epsilon: added to the variance.
    scale_init: initialiser of the [d] gain (may carry logical axis names).
    bias_init: initialiser of the [d] offset.
  """

  epsilon: float = 1e-6
  scale_init: nn.initializers.Initializer = nn.initializers.ones_init()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = x.shape[-1]
    scale = self.param("scale", self.scale_init, (features,), jnp.float32)
    bias = self.param("bias", self.bias_init, (features,), jnp.float32)
    return layer_norm(x, scale, bias, self.epsilon)

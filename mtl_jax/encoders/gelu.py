"""The exact GELU, x * Phi(x), with a hand-written backward pass.

Autodiff of 0.5 x (1 + erf(x / sqrt 2)) keeps the erf term as a residual:
XLA's CPU backend then writes it in a pass of its own in the forward and
reads it back in the backward, two extra passes over the [tokens, 4 * hidden]
activations, the largest of the layer. Here the forward is one pass that
keeps only x, and the backward recomputes Phi(x) and phi(x) from it in its
one pass: d gelu / dx = Phi(x) + x phi(x).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


@jax.custom_vjp
def gelu(x: jax.Array) -> jax.Array:
  """Exact GELU in the erf form of BERT and PyTorch (`jax.nn.gelu(approximate=False)`).

  `jax.nn.gelu(approximate=False)` computes the same function through erfc,
  which XLA's CPU backend evaluates more slowly than erf.

  Args:
    x: activations, any shape and float dtype.

  Returns:
    gelu(x), x's shape and dtype.
  """
  return 0.5 * x * (1.0 + jax.lax.erf(x * jnp.asarray(2.0 ** -0.5, x.dtype)))


def _forward(x):
  return gelu(x), x


def _backward(x, dy):
  # The barrier keeps XLA from merging this erf with the forward's (CSE), which
  # would store the forward's erf term for the backward: the pass saved above.
  x = jax.lax.optimization_barrier(x)
  cdf = 0.5 * (1.0 + jax.lax.erf(x * jnp.asarray(2.0 ** -0.5, x.dtype)))
  pdf = jnp.exp(-0.5 * x * x) * jnp.asarray(1.0 / np.sqrt(2.0 * np.pi), x.dtype)
  return (dy * (cdf + x * pdf),)


gelu.defvjp(_forward, _backward)

"""The hand-written LayerNorm equals flax's, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
import pytest

from mtl_jax.encoders.layer_norm import LayerNorm


def _params_and_input(dtype):
  rng = np.random.RandomState(0)
  x = jnp.asarray(rng.randn(3, 5, 16) * 3 + 1, dtype)
  params = {"params": {"scale": jnp.asarray(rng.randn(16), jnp.float32),
                       "bias": jnp.asarray(rng.randn(16), jnp.float32)}}
  return params, x


@pytest.mark.parametrize("dtype,tolerance", [(jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)])
def test_layer_norm_equals_flax(dtype, tolerance):
  params, x = _params_and_input(dtype)
  ours, theirs = LayerNorm(epsilon=1e-12), nn.LayerNorm(epsilon=1e-12, dtype=dtype)
  weights = jnp.asarray(np.random.RandomState(1).randn(*x.shape), jnp.float32)

  def loss(module):
    return lambda p, x: jnp.sum(module.apply(p, x).astype(jnp.float32) * weights)

  y = ours.apply(params, x)
  assert y.dtype == dtype
  # flax's LayerNorm mixes bf16 and f32 implicitly: it runs under the standard rules.
  with jax.numpy_dtype_promotion("standard"):
    y_theirs = theirs.apply(params, x)
    theirs_grads = jax.grad(loss(theirs), argnums=(0, 1))(params, x)
  np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(y_theirs, np.float32),
                             atol=tolerance, rtol=tolerance)
  ours_grads = jax.grad(loss(ours), argnums=(0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(ours_grads), jax.tree.leaves(theirs_grads)):
    assert a.dtype == b.dtype
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                               atol=20 * tolerance, rtol=tolerance)

"""The hand-written LayerNorm equals flax's, and its CPU kernel equals it: values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
import pytest

from mtl_jax import kernels
from mtl_jax.encoders import EncoderConfig
from mtl_jax.encoders.layer_norm import (LayerNorm, layer_norm, layer_norm_cpu_kernel,
                                         resolve_norm_impl)
from mtl_jax.kernels import native_kernels_available


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


# ---------------------------------------------------------------- the CPU kernel

needs_kernel = pytest.mark.skipif(not native_kernels_available(),
                                  reason="the native CPU kernels did not build here")


@needs_kernel
@pytest.mark.parametrize("shape", [(3, 5, 16), (2, 7, 21), (1, 130, 384), (4, 3)])
def test_kernel_equals_xla_values_and_gradients(shape):
  # Widths on and off the kernel's vector width (16, 21, 384, 3), rows more
  # and fewer than a gradient block (64), and a large mean: the same function
  # to float32 rounding.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=shape) * 3 + 5, jnp.float32)
  scale = jnp.asarray(rng.normal(size=shape[-1]), jnp.float32)
  bias = jnp.asarray(rng.normal(size=shape[-1]), jnp.float32)
  weights = jnp.asarray(rng.normal(size=shape), jnp.float32)

  def loss(fn):
    return jax.jit(jax.value_and_grad(lambda *a: jnp.sum(fn(*a, 1e-12) * weights),
                                      argnums=(0, 1, 2)))

  value_x, grads_x = loss(layer_norm)(x, scale, bias)
  value_k, grads_k = loss(layer_norm_cpu_kernel)(x, scale, bias)
  np.testing.assert_allclose(value_k, value_x, rtol=1e-5, atol=1e-4)
  for a, b in zip(grads_k, grads_x):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@needs_kernel
def test_kernel_parameter_gradients_are_the_same_every_run():
  # Block partial sums added in a fixed order: no dependence on which thread
  # took which rows (resumed runs are bit-exact).
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(1000, 48)), jnp.float32)
  scale, bias = jnp.ones(48, jnp.float32), jnp.zeros(48, jnp.float32)
  grad = jax.jit(jax.grad(lambda x, s, b: jnp.sum(layer_norm_cpu_kernel(x, s, b, 1e-6) ** 3),
                          argnums=(1, 2)))
  first = grad(x, scale, bias)
  for _ in range(5):
    again = grad(x, scale, bias)
    for a, b in zip(first, again):
      np.testing.assert_array_equal(a, b)


@needs_kernel
def test_kernel_under_vmap_of_the_vjp():
  # The per-task gradient modes vmap the encoder's vjp over task cotangents.
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(6, 32)), jnp.float32)
  scale = jnp.asarray(rng.normal(size=32), jnp.float32)
  bias = jnp.zeros(32, jnp.float32)
  cotangents = jnp.asarray(rng.normal(size=(3, 6, 32)), jnp.float32)
  _, vjp_k = jax.vjp(lambda *a: layer_norm_cpu_kernel(*a, 1e-6), x, scale, bias)
  _, vjp_x = jax.vjp(lambda *a: layer_norm(*a, 1e-6), x, scale, bias)
  for a, b in zip(jax.vmap(vjp_k)(cotangents), jax.vmap(vjp_x)(cotangents)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_auto_is_the_kernel_only_for_float32_on_one_cpu_device(monkeypatch):
  # The test session emulates 8 devices: a mesh partitions XLA's ops, not a custom call.
  assert resolve_norm_impl("auto", jnp.float32) == "xla"
  assert resolve_norm_impl("cpu_kernel", jnp.float32) == "cpu_kernel"
  monkeypatch.setattr(kernels, "native_kernels_available", lambda: True)
  monkeypatch.setattr(jax, "device_count", lambda: 1)
  assert resolve_norm_impl("auto", jnp.float32) == "cpu_kernel"
  assert resolve_norm_impl("auto", jnp.bfloat16) == "xla"
  monkeypatch.setattr(kernels, "native_kernels_available", lambda: False)
  assert resolve_norm_impl("auto", jnp.float32) == "xla"
  with pytest.raises(ValueError, match="norm_impl must be one of"):
    resolve_norm_impl("fused", jnp.float32)


def test_config_and_kernel_reject_what_the_kernel_does_not_compute():
  with pytest.raises(ValueError, match="norm_impl must be one of"):
    EncoderConfig(norm_impl="fused")
  with pytest.raises(ValueError, match="norm_impl='cpu_kernel' computes float32"):
    EncoderConfig(norm_impl="cpu_kernel", dtype="bfloat16")
  x = jnp.ones((2, 8), jnp.bfloat16)
  with pytest.raises(ValueError, match="computes float32"):
    layer_norm_cpu_kernel(x, jnp.ones(8, jnp.float32), jnp.zeros(8, jnp.float32), 1e-6)

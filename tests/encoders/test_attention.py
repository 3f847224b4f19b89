"""The two attention implementations compute one function: values, gradients, dropout."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.encoders import EncoderConfig
from mtl_jax.encoders import attention
from mtl_jax import kernels
from mtl_jax.kernels import build, native_kernels_available


@pytest.fixture
def kernel():
  """The CPU kernel, built: skipped only on a machine without a C++ compiler.

  Where a compiler exists (CI's Linux has one), a kernel that does not build
  is a failure, not a skip.
  """
  if native_kernels_available():
    return
  compiler = os.environ.get("CXX", "c++")
  if os.environ.get("CI") or shutil.which(compiler.split()[0]):
    pytest.fail(f"the CPU attention kernel did not build with {compiler!r} (see the warning)")
  pytest.skip(f"no C++ compiler ({compiler!r}): the CPU kernel cannot build here")


needs_kernel = pytest.mark.usefixtures("kernel")


def _inputs(b, l, h, k, seed=0):
  rng = np.random.default_rng(seed)
  qkv = jnp.asarray(rng.normal(size=(b, l, 3, h, k)), jnp.float32)
  lengths = rng.integers(1, l + 1, b)
  lengths[0] = l
  if b > 2:
    lengths[-1] = 0  # a padding row (the batcher's filler): uniform attention
  mask = jnp.asarray(np.arange(l)[None] < lengths[:, None])
  cotangent = jnp.asarray(rng.normal(size=(b, l, h, k)), jnp.float32)
  return qkv, mask, cotangent


def _value_and_grad(fn, qkv, mask, cotangent, key, rate):
  loss = lambda qkv: jnp.sum(fn(qkv, mask, key, rate) * cotangent)
  return jax.jit(jax.value_and_grad(loss))(qkv)


@needs_kernel
@pytest.mark.parametrize("shape", [(2, 8, 2, 8), (3, 13, 3, 5), (1, 33, 1, 12), (2, 70, 2, 40)])
@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_kernel_equals_xla_values_and_gradients(shape, rate):
  # Lengths and head sizes off the kernel's vector widths (8 and 16 floats),
  # every column block of its products (70 -> 80 = 64 + 16, 40 -> 48 = 32 +
  # 16), padded rows, and dropout with the same key: the same function to
  # float32 rounding.
  qkv, mask, cotangent = _inputs(*shape)
  key = jax.random.PRNGKey(5) if rate else None
  xla = jax.jit(attention.attention_xla, static_argnums=3)(qkv, mask, key, rate)
  kernel = jax.jit(attention.attention_cpu_kernel, static_argnums=3)(qkv, mask, key, rate)
  np.testing.assert_allclose(kernel, xla, atol=2e-6, rtol=1e-5)
  (value_x, grad_x) = _value_and_grad(attention.attention_xla, qkv, mask, cotangent, key, rate)
  (value_k, grad_k) = _value_and_grad(attention.attention_cpu_kernel, qkv, mask, cotangent,
                                      key, rate)
  np.testing.assert_allclose(value_k, value_x, rtol=1e-5)
  np.testing.assert_allclose(grad_k, grad_x, atol=5e-6, rtol=1e-5)


@needs_kernel
@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_kernel_keeps_no_length_by_length_residual(rate):
  # The backward recomputes the probabilities from q, k and two floats per query
  # row. Keeping them instead costs b h l l floats: at l = 256 more than all the
  # rest of this gradient's temporaries, so this fails if they come back.
  b, l, h, k = 2, 256, 2, 8
  qkv, mask, cotangent = _inputs(b, l, h, k)
  key = jax.random.PRNGKey(0) if rate else None
  loss = lambda x: jnp.sum(attention.attention_cpu_kernel(x, mask, key, rate) * cotangent)
  temp = jax.jit(jax.grad(loss)).lower(qkv).compile().memory_analysis().temp_size_in_bytes
  assert temp < b * h * l * l * 4


@needs_kernel
def test_kernel_dropout_drops_and_depends_on_the_key():
  qkv, mask, _ = _inputs(2, 16, 2, 8)
  run = jax.jit(attention.attention_cpu_kernel, static_argnums=3)
  clean = run(qkv, mask, None, 0.0)
  a = run(qkv, mask, jax.random.PRNGKey(1), 0.5)
  assert not np.allclose(a, clean)
  np.testing.assert_array_equal(a, run(qkv, mask, jax.random.PRNGKey(1), 0.5))
  assert not np.allclose(a, run(qkv, mask, jax.random.PRNGKey(2), 0.5))


@needs_kernel
def test_kernel_under_vmap_and_per_task_vjps():
  # The per-task gradient modes vmap the encoder's vjp over task cotangents.
  qkv, mask, cotangent = _inputs(2, 8, 2, 8)
  key = jax.random.PRNGKey(3)
  _, vjp_k = jax.vjp(lambda x: attention.attention_cpu_kernel(x, mask, key, 0.2), qkv)
  _, vjp_x = jax.vjp(lambda x: attention.attention_xla(x, mask, key, 0.2), qkv)
  cotangents = jnp.stack([cotangent, -2.0 * cotangent])
  np.testing.assert_allclose(jax.vmap(vjp_k)(cotangents)[0], jax.vmap(vjp_x)(cotangents)[0],
                             atol=5e-6, rtol=1e-5)


def test_auto_is_xla_where_the_kernel_does_not_apply():
  # The test session emulates 8 devices: a mesh partitions XLA's ops, not a custom call.
  assert jax.device_count() > 1
  assert attention.resolve_impl("auto", jnp.float32) == "xla"
  assert attention.resolve_impl("auto", jnp.bfloat16) == "xla"
  assert attention.resolve_impl("xla", jnp.float32) == "xla"
  assert attention.resolve_impl("cpu_kernel", jnp.float32) == "cpu_kernel"
  with pytest.raises(ValueError, match="attention_impl must be one of"):
    attention.resolve_impl("flash", jnp.float32)


@needs_kernel
def test_auto_is_the_kernel_for_float32_on_one_cpu_device(monkeypatch):
  monkeypatch.setattr(jax, "device_count", lambda: 1)
  assert attention.resolve_impl("auto", jnp.float32) == "cpu_kernel"
  assert attention.resolve_impl("auto", jnp.bfloat16) == "xla"
  monkeypatch.setenv("MTL_JAX_NATIVE_KERNELS", "0")
  monkeypatch.setattr(kernels, "native_kernels_available", lambda: build._load() is not None)
  assert attention.resolve_impl("auto", jnp.float32) == "xla"


def test_config_rejects_unknown_or_unsupported_attention_impls():
  with pytest.raises(ValueError, match="attention_impl must be"):
    EncoderConfig(attention_impl="flash")
  with pytest.raises(ValueError, match="float32 with hash dropout"):
    EncoderConfig(attention_impl="cpu_kernel", dtype="bfloat16")
  with pytest.raises(ValueError, match="float32 with hash dropout"):
    EncoderConfig(attention_impl="cpu_kernel", dropout_rng="threefry")
  qkv, mask, _ = _inputs(1, 4, 1, 4)
  with pytest.raises(ValueError, match="computes float32"):
    attention.attention_cpu_kernel(qkv.astype(jnp.bfloat16), mask, None, 0.0)

"""The BLAS path of the dense products: XLA's results and gradients, by either BLAS."""

import os
import platform
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from mtl_jax.encoders import EncoderConfig, dense
from mtl_jax import kernels
from mtl_jax.kernels import blas, build

needs_kernel = pytest.mark.skipif(not build.native_kernels_available(),
                                  reason="the native CPU kernels did not build here")
pytestmark = needs_kernel

# (m, k, n): the encoder's shapes (split by rows), a weight gradient's (split by
# columns), sizes off every block multiple, a single row, an empty sum.
SHAPES = [(512, 96, 288), (96, 512, 384), (37, 5, 3), (1, 7, 1), (300, 200, 2), (6, 0, 4)]


def _random(key, *shape):
  return jax.random.normal(jax.random.key(key), shape, jnp.float32)


@pytest.fixture(params=["provider", "openblas"])
def sgemm(request):
  """Runs a test with the process's BLAS (MKL where installed) and with SciPy's OpenBLAS."""
  if request.param == "openblas":
    blas.set_sgemm(blas.openblas_sgemm())
    yield "openblas"
    blas.blas_provider.__wrapped__()  # the process's own choice again
  else:
    yield blas.blas_provider()


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_the_product_and_both_gradients_equal_xlas(sgemm, m, k, n):
  x, w, dy = _random(0, m, k), _random(1, k, n), _random(2, m, n)
  y, vjp = jax.vjp(jax.jit(dense.blas_matmul), x, w)
  y_ref, vjp_ref = jax.vjp(jnp.matmul, x, w)
  tolerance = dict(rtol=2e-5, atol=2e-5 * np.sqrt(max(k, m)))
  np.testing.assert_allclose(y, y_ref, **tolerance)
  for got, want in zip(vjp(dy), vjp_ref(dy)):
    np.testing.assert_allclose(got, want, **tolerance)


def test_mismatched_shapes_are_the_kernels_error_not_a_wrong_result():
  blas.blas_provider()
  call = jax.ffi.ffi_call("mtl_gemm", jax.ShapeDtypeStruct((4, 3), jnp.float32))
  with pytest.raises(Exception, match="shapes do not match"):
    jax.block_until_ready(call(jnp.ones((4, 5)), jnp.ones((6, 3)), trans_a=False,
                               trans_b=False))


def test_vmap_runs_the_kernel_per_item():
  blas.blas_provider()
  x, w = _random(0, 3, 8, 5), _random(1, 3, 5, 4)
  np.testing.assert_allclose(jax.vmap(dense.blas_matmul)(x, w), jnp.matmul(x, w), rtol=1e-5,
                             atol=1e-5)


@pytest.mark.parametrize("layer, shape", [
    (nn.DenseGeneral((3, 2, 4), name="qkv"), (2, 5, 8)),  # the fused projection
    (nn.DenseGeneral(6, axis=(-2, -1)), (2, 5, 2, 4)),  # the attention output
    (nn.Dense(7), (2, 5, 8)),
])
def test_flax_layers_with_the_blas_dot_general_equal_xlas(layer, shape):
  assert dense.resolve_matmul_impl("blas", jnp.float32) == "blas"
  x = _random(3, *shape)
  params = layer.init(jax.random.key(0), x)
  blas_layer = layer.clone(dot_general=dense.dot_general("blas"))

  def loss(module, params):
    return jnp.sum(jnp.sin(module.apply(params, x)))

  value, grads = jax.value_and_grad(lambda p: loss(blas_layer, p))(params)
  value_ref, grads_ref = jax.value_and_grad(lambda p: loss(layer, p))(params)
  np.testing.assert_allclose(value, value_ref, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), grads,
               grads_ref)


def test_other_contractions_fall_back_to_xla():
  lhs, rhs = _random(0, 2, 3, 4), _random(1, 2, 4, 5)
  batched = (((2,), (1,)), ((0,), (0,)))
  np.testing.assert_array_equal(dense._blas_dot_general(lhs, rhs, batched),
                                lax.dot_general(lhs, rhs, batched))
  half = lhs.astype(jnp.bfloat16), rhs[0].astype(jnp.bfloat16)
  np.testing.assert_array_equal(dense._blas_dot_general(*half, (((2,), (0,)), ((), ()))),
                                lax.dot_general(*half, (((2,), (0,)), ((), ()))))


def test_auto_is_the_blas_path_only_with_mkl_on_one_cpu_device(monkeypatch):
  monkeypatch.setattr(kernels, "native_kernels_available", lambda: True)
  monkeypatch.setattr(jax, "device_count", lambda: 1)
  monkeypatch.setattr(blas, "blas_provider", lambda: "mkl")
  assert dense.resolve_matmul_impl("auto", jnp.float32) == "blas"
  assert dense.resolve_matmul_impl("auto", jnp.bfloat16) == "xla"
  assert dense.dot_general("auto") is dense._blas_dot_general
  monkeypatch.setattr(blas, "blas_provider", lambda: "openblas")  # no faster than XLA's
  assert dense.resolve_matmul_impl("auto", jnp.float32) == "xla"
  assert dense.dot_general("auto") is lax.dot_general
  monkeypatch.setattr(blas, "blas_provider", lambda: "mkl")
  monkeypatch.setattr(jax, "device_count", lambda: 8)  # meshes: XLA partitions its own ops
  assert dense.resolve_matmul_impl("auto", jnp.float32) == "xla"


def test_blas_without_the_kernels_is_a_clear_error(monkeypatch):
  monkeypatch.setattr(blas, "blas_provider", lambda: None)
  with pytest.raises(RuntimeError, match="matmul_impl='blas' needs the native CPU kernels"):
    dense.resolve_matmul_impl("blas", jnp.float32)


def test_the_blas_can_be_chosen_and_a_wrong_choice_is_an_error(monkeypatch):
  monkeypatch.setenv("MTL_JAX_BLAS", "openblas")
  assert blas.blas_provider.__wrapped__() == "openblas"
  monkeypatch.setenv("MTL_JAX_BLAS", "accelerate")
  with pytest.raises(ValueError, match="MTL_JAX_BLAS must be 'mkl' or 'openblas'"):
    blas.blas_provider.__wrapped__()
  monkeypatch.setenv("MTL_JAX_BLAS", "mkl")
  monkeypatch.setenv("MTL_JAX_MKL", "/nonexistent/libmkl_rt.so")
  with pytest.warns(RuntimeWarning, match="could not load MKL"), \
       pytest.raises(RuntimeError, match="MTL_JAX_BLAS=mkl, but MKL was not found"):
    blas.blas_provider.__wrapped__()
  monkeypatch.delenv("MTL_JAX_BLAS")
  monkeypatch.delenv("MTL_JAX_MKL")
  blas.blas_provider.__wrapped__()  # the process's own choice again (the kernel's pointer)


def test_mkl_is_looked_for_where_pip_puts_it(tmp_path, monkeypatch):
  monkeypatch.delenv("MTL_JAX_MKL", raising=False)
  env, user = tmp_path / "env", tmp_path / "user"
  for folder in (env, user):
    (folder / "lib").mkdir(parents=True)
  (env / "lib" / "libmkl_rt.so.2").write_bytes(b"")
  (user / "lib" / "libmkl_rt.so.3").write_bytes(b"")
  monkeypatch.setattr(blas.sys, "prefix", str(env))
  monkeypatch.setattr(blas.site, "getuserbase", lambda: str(user))
  monkeypatch.setattr(blas.ctypes.util, "find_library", lambda name: None)
  assert blas._mkl_candidates() == [str(env / "lib" / "libmkl_rt.so.2"),
                                    str(user / "lib" / "libmkl_rt.so.3")]
  monkeypatch.setenv("MTL_JAX_MKL", "/opt/intel/lib/libmkl_rt.so")
  assert blas._mkl_candidates() == ["/opt/intel/lib/libmkl_rt.so"]


def test_config_rejects_unknown_or_unsupported_matmul_impls():
  with pytest.raises(ValueError, match="matmul_impl must be one of"):
    EncoderConfig(matmul_impl="cublas")
  with pytest.raises(ValueError, match="matmul_impl='blas' computes float32"):
    EncoderConfig(matmul_impl="blas", dtype="bfloat16")


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.machine() == "x86_64"
                         and os.environ.get("CI")),
                    reason="CI on x86-64 Linux installs MKL (the test extra); elsewhere it may not")
def test_mkl_is_the_provider_on_linux_ci():
  assert blas.blas_provider() == "mkl"

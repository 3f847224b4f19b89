"""The encoder's dense products: XLA's `dot_general`, or a BLAS sgemm on CPU.

`dot_general(impl)` is what the encoder passes to flax's `Dense` and
`DenseGeneral`. With "blas" a product that contracts the input's trailing
axes with the kernel's leading axes (every projection of the encoder) runs
as the `mtl_gemm` custom call (`mtl_jax/kernels/gemm_cpu.cc`), forward and
both gradients: the input gradient `dy w^T` and the weight gradient
`x^T dy` read the transposed operand in place. Any other product, and every
product under "xla", is `lax.dot_general`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from mtl_jax.encoders.config import MATMUL_IMPLS
from mtl_jax.kernels import blas, native_kernels_apply


def _require_blas() -> None:
  if blas.blas_provider() is None:  # also hands the kernel its sgemm, once per process
    raise RuntimeError("matmul_impl='blas' needs the native CPU kernels, which are "
                       "unavailable (see the warning above); use matmul_impl='xla'")


def gemm(a: jax.Array, b: jax.Array, trans_a: bool = False, trans_b: bool = False
         ) -> jax.Array:
  """`op(a) @ op(b)` of float32 matrices as one `mtl_gemm` call (no gradient of its own).

  Args:
    a: [m, k], or [k, m] with `trans_a` (read transposed in place).
    b: [k, n], or [n, k] with `trans_b`.

  Returns:
    [m, n] float32.

  Raises:
    RuntimeError: the native CPU kernels are unavailable.
  """
  _require_blas()
  m = a.shape[1] if trans_a else a.shape[0]
  n = b.shape[0] if trans_b else b.shape[1]
  return jax.ffi.ffi_call("mtl_gemm", jax.ShapeDtypeStruct((m, n), jnp.float32),
                          vmap_method="sequential")(a, b, trans_a=trans_a, trans_b=trans_b)


@jax.custom_vjp
def blas_matmul(x_mk: jax.Array, w_kn: jax.Array) -> jax.Array:
  """`x_mk @ w_kn` (float32 matrices) through the BLAS kernel, with its gradients."""
  return gemm(x_mk, w_kn)


def _matmul_forward(x_mk, w_kn):
  return gemm(x_mk, w_kn), (x_mk, w_kn)


def _matmul_backward(residuals, dy_mn):
  x_mk, w_kn = residuals
  return gemm(dy_mn, w_kn, trans_b=True), gemm(x_mk, dy_mn, trans_a=True)


blas_matmul.defvjp(_matmul_forward, _matmul_backward)


def _blas_dot_general(lhs, rhs, dimension_numbers, precision=None,
                      preferred_element_type=None):
  (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
  n = len(lhs_contract)
  fits = (not lhs_batch and not rhs_batch
          and tuple(lhs_contract) == tuple(range(lhs.ndim - n, lhs.ndim))
          and tuple(rhs_contract) == tuple(range(n))
          and lhs.dtype == rhs.dtype == jnp.float32
          and preferred_element_type in (None, jnp.float32))
  if not fits:
    return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                           preferred_element_type=preferred_element_type)
  batch_shape, out_shape = lhs.shape[:lhs.ndim - n], rhs.shape[n:]
  k = math.prod(rhs.shape[:n])
  y = blas_matmul(lhs.reshape(math.prod(batch_shape), k),
                  rhs.reshape(k, math.prod(out_shape)))
  return y.reshape(*batch_shape, *out_shape)


def resolve_matmul_impl(impl: str, dtype) -> str:
  """The implementation `impl` ("auto", "xla" or "blas") stands for here.

  "auto" is "blas" when the computation is float32 on a single CPU device
  (under a mesh XLA partitions its own ops, not a custom call) and MKL is
  found (`mtl_jax.kernels.blas`); "xla" otherwise. "blas" takes whichever
  BLAS is found and raises where the native kernels are unavailable.
  """
  if impl not in MATMUL_IMPLS:
    raise ValueError(f"matmul_impl must be one of {MATMUL_IMPLS}, got {impl!r}")
  if impl == "blas":
    _require_blas()
    return impl
  if impl == "xla":
    return impl
  return "blas" if native_kernels_apply(dtype) and blas.blas_provider() == "mkl" else "xla"


def dot_general(impl: str, dtype="float32"):
  """The `dot_general` for flax's dense layers under `impl` (see `resolve_matmul_impl`)."""
  return _blas_dot_general if resolve_matmul_impl(impl, dtype) == "blas" else lax.dot_general

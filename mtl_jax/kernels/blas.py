"""Finds a BLAS `sgemm` for the `mtl_gemm` kernel and hands it over.

The kernel (`gemm_cpu.cc`) links no BLAS; it calls the Fortran-interface
`sgemm` whose address it was given. Two providers, in order:

- "mkl": Intel MKL's single runtime library, `libmkl_rt`, from the `mkl`
  wheel (`pip install "mtl-jax[mkl]"`, Linux x86-64), `$MTL_JAX_MKL` (a path
  to the library), or the system's library path. Put in its sequential
  threading layer: the kernel runs one call per thread of XLA's pool, and a
  threaded MKL would compete with that pool for the cores.
- "openblas": SciPy's own OpenBLAS (`scipy.linalg.cython_blas`), present
  wherever mtl_jax is. Threaded, and called from every thread of XLA's pool
  at once, it ran the encoder's products at half XLA's rate on the CPU we
  measured (BENCHMARKS.md), so `matmul_impl="auto"` uses the kernel only
  with MKL; "openblas" serves `matmul_impl="blas"` and the kernel's tests
  where MKL is absent.

`$MTL_JAX_BLAS` ("mkl" or "openblas") picks one; "mkl" where MKL is not
found is an error.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import site
import sys
import warnings
from pathlib import Path

from mtl_jax.kernels import build

_MKL_SEQUENTIAL = 1  # MKL_THREADING_SEQUENTIAL of mkl_service.h


def _mkl_candidates() -> list[str]:
  if os.environ.get("MTL_JAX_MKL"):
    return [os.environ["MTL_JAX_MKL"]]
  # Where pip puts the mkl wheel's libraries: the environment's lib/ (venv, conda),
  # or the user base's (pip install --user).
  folders = [Path(sys.prefix) / "lib", Path(site.getuserbase()) / "lib"]
  found = [str(folder / name) for folder in folders
           for name in ("libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so")
           if (folder / name).exists()]
  system = ctypes.util.find_library("mkl_rt")
  return found + ([system] if system else [])


def mkl_sgemm() -> int | None:
  """The address of MKL's sgemm, in MKL's sequential layer; None where MKL is not found."""
  for path in _mkl_candidates():
    try:
      library = ctypes.CDLL(path)
    except OSError as error:
      warnings.warn(f"mtl_jax: could not load MKL from {path}: {error}", RuntimeWarning,
                    stacklevel=4)
      continue
    # Returns the layer in force: another, if this process used MKL before.
    set_layer = library.MKL_Set_Threading_Layer
    set_layer.argtypes, set_layer.restype = [ctypes.c_int], ctypes.c_int
    if set_layer(_MKL_SEQUENTIAL) != _MKL_SEQUENTIAL:
      warnings.warn(f"mtl_jax: MKL ({path}) is already in use with a threaded layer in this "
                    "process; not using it for the dense products", RuntimeWarning,
                    stacklevel=4)
      continue
    return ctypes.cast(library.sgemm, ctypes.c_void_p).value
  return None


def openblas_sgemm() -> int:
  """The address of SciPy's OpenBLAS sgemm."""
  from scipy.linalg import cython_blas  # pylint: disable=import-outside-toplevel
  capsule = ctypes.py_object(cython_blas.__pyx_capi__["sgemm"])
  get_name = ctypes.pythonapi.PyCapsule_GetName
  get_name.argtypes, get_name.restype = [ctypes.py_object], ctypes.c_char_p
  get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
  get_pointer.argtypes, get_pointer.restype = [ctypes.py_object, ctypes.c_char_p], ctypes.c_void_p
  return get_pointer(capsule, get_name(capsule))


@functools.cache
def blas_provider() -> str | None:
  """Sets the kernel's sgemm (once per process) and says whose it is.

  Returns:
    "mkl" or "openblas" (see the module docstring), or None when the native
    kernels are unavailable (no C++ compiler, or `MTL_JAX_NATIVE_KERNELS=0`).

  Raises:
    ValueError: `$MTL_JAX_BLAS` is neither "mkl" nor "openblas".
    RuntimeError: `$MTL_JAX_BLAS=mkl` and MKL is not found.
  """
  wanted = os.environ.get("MTL_JAX_BLAS", "")
  if wanted not in ("", "mkl", "openblas"):
    raise ValueError(f"MTL_JAX_BLAS must be 'mkl' or 'openblas', got {wanted!r}")
  if not build.native_kernels_available():
    return None
  address, name = (None if wanted == "openblas" else mkl_sgemm()), "mkl"
  if address is None and wanted == "mkl":
    raise RuntimeError("MTL_JAX_BLAS=mkl, but MKL was not found: pip install 'mtl-jax[mkl]', "
                       "or set MTL_JAX_MKL to libmkl_rt's path")
  if address is None:
    address, name = openblas_sgemm(), "openblas"
  set_sgemm(address)
  return name


def set_sgemm(address: int) -> None:
  """Makes the kernel call the Fortran-interface sgemm at `address` (process-wide)."""
  setter = build.native_library().MtlSetSgemm
  setter.argtypes, setter.restype = [ctypes.c_void_p], None
  setter(address)

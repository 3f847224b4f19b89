"""Compiles the C++ kernels of this folder on first use and registers them with XLA.

The kernels are XLA FFI custom calls for the CPU backend. They are built
the first time a process asks for them, with the machine's C++ compiler
(`$CXX`, else `c++`) against the FFI headers that ship with jaxlib, for the
machine's own instruction set, and cached under `$MTL_JAX_KERNEL_CACHE`
(default `$XDG_CACHE_HOME/mtl_jax/kernels`, else `~/.cache/mtl_jax/kernels`)
keyed by the sources, jaxlib's version and the CPU's feature flags. A build
prints one line when it starts and one when it ends (with the compiler's
warnings, if any), and is stopped after `$MTL_JAX_KERNEL_BUILD_TIMEOUT`
seconds (default 300); it also removes half-written libraries of crashed
builds and builds unused for 30 days. On macOS, where running `c++` without
the command-line tools opens an install dialog, the build is skipped unless
`xcode-select -p` finds them. Where no compiler works,
`native_kernels_available()` is False (after one warning naming the
compiler's error) and callers use their pure-XLA path;
`MTL_JAX_NATIVE_KERNELS=0` turns the kernels off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import jax
import jaxlib

_HERE = Path(__file__).parent
_SOURCES = [_HERE / "attention_cpu.cc", _HERE / "gemm_cpu.cc", _HERE / "layer_norm_cpu.cc"]
_HEADERS = [_HERE / "parallel_for.h", _HERE / "vectors.h"]
# FFI handler symbols of the library -> the custom-call target names.
_TARGETS = {"MtlAttentionForward": "mtl_attention_forward",
            "MtlAttentionBackward": "mtl_attention_backward",
            "MtlGemm": "mtl_gemm",
            "MtlLayerNormForward": "mtl_layer_norm_forward",
            "MtlLayerNormBackward": "mtl_layer_norm_backward"}
_FLAGS = ["-O3", "-march=native", "-std=c++17", "-shared", "-fPIC"]
_PREFIX = "kernels_cpu-"
# Builds nobody loaded for this long are removed after a new build.
_STALE_SECONDS = 30 * 24 * 3600
_HALF_WRITTEN_SECONDS = 3600


def _cpu_flags() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith(("flags", "Features")):
          return line
  except OSError:
    pass
  return platform.processor()


def _library_path(compiler: str) -> Path:
  key = hashlib.sha256("\n".join([
      *(path.read_text() for path in _SOURCES + _HEADERS), jaxlib.__version__, compiler,
      " ".join(_FLAGS), platform.machine(), _cpu_flags()]).encode()).hexdigest()[:16]
  return cache_dir() / f"{_PREFIX}{key}.so"


def cache_dir() -> Path:
  """Where built libraries live (see the module docstring)."""
  if os.environ.get("MTL_JAX_KERNEL_CACHE"):
    return Path(os.environ["MTL_JAX_KERNEL_CACHE"])
  base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
  return Path(base) / "mtl_jax" / "kernels"


def _remove_stale(directory: Path, keep: Path) -> None:
  """Half-written temp libraries (crashed builds) and builds unused for 30 days."""
  now = time.time()
  for path in directory.glob("*.so"):
    try:
      stat = path.stat()
      half_written = not path.name.startswith(_PREFIX)
      if path != keep and (
          (half_written and now - stat.st_mtime > _HALF_WRITTEN_SECONDS)
          or (not half_written and now - max(stat.st_atime, stat.st_mtime) > _STALE_SECONDS)):
        path.unlink()
    except OSError:
      pass  # another process's file, or already gone


def _check_toolchain(compiler: str) -> None:
  """On macOS, never let a compiler call open the command-line tools installer."""
  if platform.system() != "Darwin" or compiler not in ("c++", "clang++", "g++"):
    return
  found = subprocess.run(["xcode-select", "-p"], capture_output=True, text=True)
  if found.returncode:
    raise RuntimeError("no Xcode command-line tools (xcode-select -p failed); install them "
                       "with xcode-select --install, or set CXX to a compiler")


def _compile(compiler: str, target: Path) -> None:
  _check_toolchain(compiler)
  target.parent.mkdir(parents=True, exist_ok=True)
  timeout = float(os.environ.get("MTL_JAX_KERNEL_BUILD_TIMEOUT", "300"))
  # Build beside the target and rename: concurrent processes never load a
  # half-written library.
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
  os.close(fd)
  # jaxlib's headers as system headers: their warnings are not ours to show.
  command = [*shlex.split(compiler), *_FLAGS, "-I", str(_HERE), "-isystem", jax.ffi.include_dir(),
             *map(str, _SOURCES), "-o", tmp]
  print(f"mtl_jax: building the native CPU kernels (once per machine): {target}",
        file=sys.stderr, flush=True)
  start = time.time()
  try:
    try:
      result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
      raise RuntimeError(f"{shlex.join(command)} ran past {timeout:g} s "
                         "(MTL_JAX_KERNEL_BUILD_TIMEOUT)") from None
    if result.returncode:
      raise RuntimeError(f"{shlex.join(command)} failed:\n{result.stderr[-2000:]}")
    os.replace(tmp, target)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  warned = f"; compiler warnings:\n{result.stderr[-2000:]}" if result.stderr.strip() else ""
  print(f"mtl_jax: built the native CPU kernels in {time.time() - start:.1f} s{warned}",
        file=sys.stderr, flush=True)
  _remove_stale(target.parent, keep=target)


def native_kernels_available() -> bool:
  """Builds (once per machine) and registers the CPU kernels.

  Returns:
    True when the custom-call targets `mtl_attention_forward`,
    `mtl_attention_backward` and `mtl_gemm` are registered for the CPU
    platform.
  """
  return _library() is not None


def native_library() -> ctypes.CDLL:
  """The loaded kernel library (for its plain C entry points, e.g. `MtlSetSgemm`).

  Raises:
    RuntimeError: the kernels are off or did not build.
  """
  library = _library()
  if library is None:
    raise RuntimeError("the native CPU kernels are unavailable (MTL_JAX_NATIVE_KERNELS=0, "
                       "or the build failed: see its warning)")
  return library


@functools.cache
def _library() -> ctypes.CDLL | None:
  return _load()


def _load() -> ctypes.CDLL | None:
  """Builds if needed and loads the library; None (after a warning) where it cannot."""
  if os.environ.get("MTL_JAX_NATIVE_KERNELS", "1") == "0":
    return None
  compiler = os.environ.get("CXX", "c++")
  target = _library_path(compiler)
  try:
    if not target.exists():
      _compile(compiler, target)
    library = ctypes.cdll.LoadLibrary(str(target))
  except (OSError, RuntimeError) as error:
    warnings.warn(f"mtl_jax: native CPU kernels unavailable, using XLA's ops: {error}",
                  RuntimeWarning, stacklevel=4)
    return None
  for symbol, name in _TARGETS.items():
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, symbol)),
                                platform="cpu")
  return library

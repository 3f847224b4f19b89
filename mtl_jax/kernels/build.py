"""Compiles the C++ kernels of this folder on first use and registers them with XLA.

The kernels are XLA FFI custom calls for the CPU backend. They are built
the first time a process asks for them, with the machine's C++ compiler
(`$CXX`, else `c++`) against the FFI headers that ship with jaxlib, for the
machine's own instruction set, and cached under `$MTL_JAX_KERNEL_CACHE`
(default `~/.cache/mtl_jax/kernels`) keyed by the source, jaxlib's version
and the CPU's feature flags. Where no compiler works, `native_kernels_available()`
is False (after one warning naming the compiler's error) and callers use
their pure-XLA path; `MTL_JAX_NATIVE_KERNELS=0` turns the kernels off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import tempfile
import warnings
from pathlib import Path

import jax
import jaxlib

_SOURCE = Path(__file__).with_name("attention_cpu.cc")
# FFI handler symbols of the library -> the custom-call target names.
_TARGETS = {"MtlAttentionForward": "mtl_attention_forward",
            "MtlAttentionBackward": "mtl_attention_backward"}
_FLAGS = ["-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w"]


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
      _SOURCE.read_text(), jaxlib.__version__, compiler, " ".join(_FLAGS),
      platform.machine(), _cpu_flags()]).encode()).hexdigest()[:16]
  cache = Path(os.environ.get("MTL_JAX_KERNEL_CACHE",
                              Path.home() / ".cache" / "mtl_jax" / "kernels"))
  return cache / f"attention_cpu-{key}.so"


def _compile(compiler: str, target: Path) -> None:
  target.parent.mkdir(parents=True, exist_ok=True)
  # Build beside the target and rename: concurrent processes never load a
  # half-written library.
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
  os.close(fd)
  command = [*shlex.split(compiler), *_FLAGS, f"-I{jax.ffi.include_dir()}",
             str(_SOURCE), "-o", tmp]
  try:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
      raise RuntimeError(f"{shlex.join(command)} failed:\n{result.stderr[-2000:]}")
    os.replace(tmp, target)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


@functools.cache
def native_kernels_available() -> bool:
  """Builds (once per machine) and registers the CPU kernels.

  Returns:
    True when the custom-call targets `mtl_attention_forward` and
    `mtl_attention_backward` are registered for the CPU platform.
  """
  if os.environ.get("MTL_JAX_NATIVE_KERNELS", "1") == "0":
    return False
  compiler = os.environ.get("CXX", "c++")
  target = _library_path(compiler)
  try:
    if not target.exists():
      _compile(compiler, target)
    library = ctypes.cdll.LoadLibrary(str(target))
  except (OSError, RuntimeError) as error:
    warnings.warn(f"mtl_jax: native CPU kernels unavailable, using XLA's ops: {error}",
                  RuntimeWarning, stacklevel=2)
    return False
  for symbol, name in _TARGETS.items():
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, symbol)),
                                platform="cpu")
  return True

"""`mtl-jax doctor`: what this machine gives a run, the first thing to paste into a bug report."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import warnings

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "datasets", "tokenizers",
            "numpy", "tensorflow-datasets")


def report() -> list[str]:
  """The lines `mtl-jax doctor` prints."""
  import jax

  from mtl_jax.kernels import blas, build

  lines = [f"python {sys.version.split()[0]} on {platform.platform()}"]
  for name in PACKAGES:
    try:
      lines.append(f"{name} {importlib.metadata.version(name)}")
    except importlib.metadata.PackageNotFoundError:
      lines.append(f"{name} not installed")
  devices = jax.devices()
  lines.append(f"jax backend {jax.default_backend()}: {len(devices)} device(s), "
               f"{devices[0].device_kind}")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    built = build.native_kernels_available()
  if os.environ.get("MTL_JAX_NATIVE_KERNELS", "1") == "0":
    why = "off (MTL_JAX_NATIVE_KERNELS=0)"
  elif built:
    why = "built"
  else:
    why = "unavailable: " + (str(caught[-1].message).splitlines()[0] if caught else "unknown")
  lines.append(f"CPU kernels (attention, layer norm, BLAS call): {why}")
  used = built and jax.default_backend() == "cpu" and len(devices) == 1
  lines.append("attention_impl='auto' and norm_impl='auto' use: " + (
      "the CPU kernels (float32)" if used else
      "XLA's ops" + ("" if built else " (no kernel)") +
      (f" ({len(devices)} devices: meshes use XLA)" if len(devices) > 1 else "")))
  provider = blas.blas_provider() if built else None
  lines.append("BLAS for the dense products: " + {
      "mkl": "MKL", "openblas": "SciPy's OpenBLAS (no MKL: pip install 'mtl-jax[mkl]')",
      None: "none (no kernel)"}[provider])
  lines.append("matmul_impl='auto' uses: " + (
      "MKL's sgemm (float32)" if used and provider == "mkl" else "XLA's dot_general"))
  lines.append(f"kernel cache: {build._library_path(os.environ.get('CXX', 'c++')).parent}")  # pylint: disable=protected-access
  import datasets.config
  lines.append(f"data cache (Hugging Face datasets): {datasets.config.HF_DATASETS_CACHE}; "
               "tokenized splits are cached beside their source files")
  return lines

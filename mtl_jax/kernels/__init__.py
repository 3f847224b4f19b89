"""Native CPU kernels, compiled from source on first use (see `build.py`)."""

from mtl_jax.kernels.build import native_kernels_available

__all__ = ["native_kernels_available"]

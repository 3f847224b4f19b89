"""Native CPU kernels, compiled from source on first use (see `build.py`)."""

import jax
import jax.numpy as jnp

from mtl_jax.kernels.build import native_kernels_available

__all__ = ["native_kernels_apply", "native_kernels_available"]


def native_kernels_apply(dtype) -> bool:
  """Whether an "auto" implementation takes a native kernel for a `dtype` computation.

  Yes for float32 on a single CPU device (under a mesh XLA partitions its own
  ops, not a custom call) where the kernels build.
  """
  return (jnp.dtype(dtype) == jnp.float32 and jax.default_backend() == "cpu"
          and jax.device_count() == 1 and native_kernels_available())

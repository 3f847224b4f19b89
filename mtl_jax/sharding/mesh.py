"""The device mesh of a run, from `config.mesh.shape`."""

from __future__ import annotations

import logging
import math
from typing import Mapping, Sequence

import jax
from jax.sharding import AxisType, Mesh

from mtl_jax.sharding.rules import MESH_AXES

log = logging.getLogger(__name__)


def mesh_shape(shape: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
  """Each mesh axis's size; one axis may be -1 (the rest of the devices).

  Args:
    shape: mesh axis -> size (`data`, `fsdp`, `model`; missing axes are 1).
    num_devices: the devices available.

  Returns:
    The sizes in `MESH_AXES` order.

  Raises:
    ValueError: unknown axis, more than one -1, or sizes the devices cannot fill.
  """
  unknown = set(shape) - set(MESH_AXES)
  if unknown:
    raise ValueError(f"mesh.shape: unknown axis {sorted(unknown)[0]!r}; the mesh axes "
                     f"are {', '.join(MESH_AXES)}")
  sizes = [int(shape.get(axis, 1)) for axis in MESH_AXES]
  if sizes.count(-1) > 1:
    raise ValueError(f"mesh.shape {dict(shape)}: at most one axis may be -1")
  if any(size == 0 or size < -1 for size in sizes):
    raise ValueError(f"mesh.shape {dict(shape)}: sizes must be positive or -1")
  fixed = math.prod(size for size in sizes if size != -1)
  if -1 in sizes:
    if num_devices % fixed:
      raise ValueError(f"mesh.shape {dict(shape)}: {num_devices} devices are not a "
                       f"multiple of the fixed axes' product {fixed}")
    sizes[sizes.index(-1)] = num_devices // fixed
  elif fixed > num_devices:
    raise ValueError(f"mesh.shape {dict(shape)} needs {fixed} devices; there are "
                     f"{num_devices}")
  return tuple(sizes)


def make_mesh(shape: Mapping[str, int], devices: Sequence[jax.Device] | None = None
              ) -> Mesh:
  """A mesh with axes `data`, `fsdp`, `model` over `devices` (default: all).

  A mesh smaller than the device count uses the first devices (one process
  only: with several processes every device must be in the mesh). The axes
  are `Auto` (not `jax.make_mesh`'s default, `Explicit`): shardings are set
  on the jitted step's inputs and outputs and XLA propagates them through
  the model.

  Raises:
    ValueError: the shape does not fit the devices.
  """
  devices = list(jax.devices() if devices is None else devices)
  sizes = mesh_shape(shape, len(devices))
  used = math.prod(sizes)
  if used < len(devices):
    if jax.process_count() > 1:
      raise ValueError(f"mesh.shape {dict(shape)} uses {used} of the {len(devices)} "
                       "devices; on several hosts the mesh must use them all "
                       "(set one axis to -1)")
    log.warning("mesh %s uses %d of %d devices", dict(zip(MESH_AXES, sizes)), used,
                len(devices))
  return jax.make_mesh(sizes, MESH_AXES, axis_types=(AxisType.Auto,) * len(sizes),
                       devices=devices[:used])

"""Sharding: the device mesh, logical-axis rules as data, multi-host setup."""

from mtl_jax.sharding.distributed import initialize, is_primary
from mtl_jax.sharding.layout import (Layout, active_layout, constrain, task_axes)
from mtl_jax.sharding.mesh import make_mesh, mesh_shape
from mtl_jax.sharding.rules import DEFAULT_RULES, MESH_AXES, normalize_rules

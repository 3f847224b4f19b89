"""Where every array of a run lives: logical axis names -> `NamedSharding`s.

A `Layout` is a mesh plus the logical-axis rules. It turns the model's
logical axis names into shardings for the params, the optimizer and
weighting states (laid out like the params they mirror) and the batches, and
puts host arrays onto the mesh. A dimension whose size the mesh axes do not
divide stays whole (e.g. 12 heads on a 8-way `model` axis), so any rules fit
any model.

Inside a step, `constrain(tree, logical_axes)` lays out intermediate values
(e.g. per-task gradients `grads_kp`, with `task_axes(model.logical_axes())`)
by the same rules; it is a no-op unless a layout is active when the step is
traced (`with layout.activate():` around the first call of a jitted step,
as the training loop does; jit caches the trace).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from typing import Any, Iterator, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mtl_jax.sharding.mesh import make_mesh
from mtl_jax.sharding.rules import DEFAULT_RULES, LogicalRules, normalize_rules

TASK_AXIS = "task"
BATCH_AXIS = "batch"

_ACTIVE: contextvars.ContextVar["Layout | None"] = contextvars.ContextVar(
    "mtl_jax_layout", default=None)


def _is_spec(x) -> bool:
  return isinstance(x, PartitionSpec)


@dataclasses.dataclass(frozen=True)
class Layout:
  """A device mesh and the rules that map logical axis names onto it."""

  mesh: Mesh
  rules: LogicalRules = DEFAULT_RULES

  @classmethod
  def from_config(cls, mesh_config: Mapping[str, Any],
                  devices: Sequence[jax.Device] | None = None) -> "Layout":
    """From `config.mesh` (`shape` and `rules`)."""
    shape = mesh_config["shape"]
    shape = shape.to_dict() if hasattr(shape, "to_dict") else dict(shape)
    return cls(make_mesh(shape, devices), normalize_rules(mesh_config["rules"]))

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  @property
  def batch_parallelism(self) -> int:
    """How many ways a batch is split (the product of its mesh axes)."""
    return self._axes_size(nn.logical_to_mesh_axes((BATCH_AXIS,), self.rules)[0])

  def _axes_size(self, axes) -> int:
    if axes is None:
      return 1
    axes = axes if isinstance(axes, tuple) else (axes,)
    return math.prod(self.mesh.shape[a] for a in axes)

  def spec(self, logical_axes: Sequence[str | None], shape: Sequence[int]
           ) -> PartitionSpec:
    """The mesh partition of an array with these logical axes and shape.

    A dimension keeps the longest prefix of its mesh axes whose product
    divides its size (none: replicated).
    """
    mesh_axes = nn.logical_to_mesh_axes(tuple(logical_axes), self.rules)
    parts = []
    for axes, size in zip(mesh_axes, shape):
      axes = () if axes is None else (axes if isinstance(axes, tuple) else (axes,))
      axes = tuple(a for a in axes if self.mesh.shape[a] > 1)  # P(None) reads better
      while axes and size % self._axes_size(axes):
        axes = axes[:-1]
      parts.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*parts)

  def sharding(self, logical_axes: Sequence[str | None], shape: Sequence[int]
               ) -> NamedSharding:
    return NamedSharding(self.mesh, self.spec(logical_axes, shape))

  def shardings(self, abstract_tree: Any, logical_tree: Any) -> Any:
    """Shardings for a tree of arrays (or `ShapeDtypeStruct`s) and its logical axes."""
    return jax.tree.map(lambda spec, x: self.sharding(spec, x.shape), logical_tree,
                        abstract_tree, is_leaf=_is_spec)

  def state_shardings(self, abstract_state: Any, param_axes: Any) -> Any:
    """Shardings for a whole train state, from the params' logical axes.

    Every sub-tree shaped like the params (the params, Adam's moments, an
    accumulated gradient, a balancing method's per-param state) is laid out
    like the params; a leaf with one more leading dimension than its param
    (a per-task stack) gets the `task` axis first. Everything else (step
    counts, rngs, per-task loss histories) is replicated.

    Args:
      abstract_state: the state's structure, e.g. from `jax.eval_shape`; it
        must have a `params` attribute.
      param_axes: `model.logical_axes()`, a `PartitionSpec` per param.

    Returns:
      The state's tree of `NamedSharding`s.
    """
    params = abstract_state.params
    params_def = jax.tree.structure(params)
    param_leaves = jax.tree.leaves(params)
    axes_leaves = jax.tree.leaves(param_axes, is_leaf=_is_spec)
    if len(axes_leaves) != len(param_leaves):
      raise ValueError(f"logical axes cover {len(axes_leaves)} params; the state has "
                       f"{len(param_leaves)}")

    def like_params(subtree):
      out = []
      for leaf, param, axes in zip(jax.tree.leaves(subtree), param_leaves, axes_leaves):
        shape = tuple(leaf.shape)
        if shape == tuple(param.shape):
          out.append(self.sharding(axes, shape))
        elif shape[1:] == tuple(param.shape):
          out.append(self.sharding((TASK_AXIS, *axes), shape))
        else:
          out.append(self.replicated)
      return jax.tree.unflatten(params_def, out)

    def matches(node) -> bool:
      return jax.tree.structure(node) == params_def

    return jax.tree.map(
        lambda node: like_params(node) if matches(node) else self.replicated,
        abstract_state, is_leaf=matches)

  def batch_sharding(self, x: Any) -> NamedSharding:
    """Split along the first (`batch`) dimension; scalars replicated."""
    shape = np.shape(x)
    return self.sharding((BATCH_AXIS,) + (None,) * (len(shape) - 1), shape)

  def put(self, tree: Any, shardings: Any) -> Any:
    """Host arrays -> global arrays on the mesh.

    Every process passes the same values and transfers only the parts its own
    devices hold, so this works unchanged on one host and on many.
    """

    def put_one(x, sharding):
      x = np.asarray(x)
      return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put_one, tree, shardings)

  def put_replicated(self, tree: Any) -> Any:
    """Host arrays -> global arrays every device holds whole (e.g. counters)."""
    return self.put(tree, jax.tree.map(lambda _: self.replicated, tree))

  def put_batch(self, batch: Any) -> Any:
    """A host batch on the mesh, split along the batch dimension."""
    return self.put(batch, jax.tree.map(self.batch_sharding, batch))

  def constrain(self, tree: Any, logical_tree: Any) -> Any:
    """`with_sharding_constraint` by logical axis names (inside jit)."""
    return jax.tree.map(
        lambda spec, x: jax.lax.with_sharding_constraint(x, self.sharding(spec, x.shape)),
        logical_tree, tree, is_leaf=_is_spec)

  @contextlib.contextmanager
  def activate(self) -> Iterator["Layout"]:
    """Makes this the layout `constrain` uses while tracing steps."""
    token = _ACTIVE.set(self)
    try:
      yield self
    finally:
      _ACTIVE.reset(token)


def active_layout() -> Layout | None:
  """The layout set by `Layout.activate`, or None."""
  return _ACTIVE.get()


def constrain(tree: Any, logical_tree: Any) -> Any:
  """Lays out `tree` by its logical axes under the active layout (else unchanged)."""
  layout = active_layout()
  return tree if layout is None else layout.constrain(tree, logical_tree)


def task_axes(logical_tree: Any) -> Any:
  """Logical axes of per-task stacks of a tree: `task` before each leaf's axes.

  E.g. per-task gradients `grads_kp` are laid out with
  `constrain(grads_kp, task_axes(model.logical_axes()))`.
  """
  return jax.tree.map(lambda spec: PartitionSpec(TASK_AXIS, *spec), logical_tree,
                      is_leaf=_is_spec)

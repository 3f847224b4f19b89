"""Logical-axis rules: which mesh axes each named array dimension is split over.

Every parameter carries logical axis names (`vocab`, `embed`, `heads`, `kv`,
`mlp`, ...; per-task stacks add `task`), batches carry `batch`. A rule
`(logical_name, mesh_axes)` splits that dimension over those mesh axes; rules
are tried in order and a mesh axis serves at most one dimension of an array
(flax's `logical_to_mesh_axes` semantics). Names without a rule are
replicated. The rules are plain data, so a config chooses the parallelism:

* data parallel:   mesh `data=-1`            (params replicated, batch split)
* FSDP:            mesh `fsdp=-1`            (params and optimizer state split
                                              on `embed`, batch split)
* tensor parallel: mesh `data=-1, model=4`   (attention heads, MLP and vocab
                                              split, batch split on `data`)
"""

from __future__ import annotations

from typing import Sequence

# The mesh axes, outermost first: `data` varies slowest, so it is the axis that
# crosses hosts (the slow network), `model` the fastest (the chips' links).
MESH_AXES = ("data", "fsdp", "model")

LogicalRules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

DEFAULT_RULES: LogicalRules = (
    ("batch", ("data", "fsdp")),
    ("vocab", "model"),
    ("heads", "model"),
    ("mlp", "model"),
    ("embed", "fsdp"),
    ("task", None),
)


def normalize_rules(rules: Sequence[Sequence]) -> LogicalRules:
  """Rules as nested tuples (a config read back from JSON holds lists).

  Raises:
    ValueError: a rule that is not a (logical name, mesh axes) pair, or names
      a mesh axis that does not exist.
  """
  normalized = []
  for rule in rules:
    if len(rule) != 2 or not isinstance(rule[0], str):
      raise ValueError(f"mesh.rules: {rule!r} must be a (logical_name, mesh_axes) pair")
    name, axes = rule
    if isinstance(axes, (list, tuple)):
      axes = tuple(axes)
    for axis in (axes if isinstance(axes, tuple) else (axes,)):
      if axis is not None and axis not in MESH_AXES:
        raise ValueError(f"mesh.rules: rule for {name!r} names mesh axis {axis!r}; "
                         f"the mesh axes are {', '.join(MESH_AXES)}")
    normalized.append((name, axes))
  return tuple(normalized)

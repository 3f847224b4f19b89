"""Fixed loss weights: equal (the plain sum of task losses) and static."""

from __future__ import annotations

from typing import Mapping, Sequence

import jax.numpy as jnp

from mtl_jax.weighting.base import LossWeighting, init_empty, register


@register("equal")
def equal() -> LossWeighting:
  """Every task weighs 1: the step minimises the sum of the task losses."""

  def update(losses_k, state, **extras):
    del extras
    return jnp.ones_like(losses_k), state

  return LossWeighting(init_empty, update)


@register("static")
def static(weights: Mapping[str, float] | Sequence[float], num_tasks: int,
           task_names: Sequence[str] | None = None) -> LossWeighting:
  """User-chosen constant weights.

  Args:
    weights: {task: weight}, or a list in the run's task order (tasks are
      ordered by name).
    num_tasks: the number of tasks (from the run).
    task_names: the run's task names (from the run), to read a dict.
  """
  if isinstance(weights, Mapping):
    names = list(task_names or [])
    unknown = sorted(set(weights) - set(names))
    missing = [n for n in names if n not in weights]
    if unknown or missing:
      raise ValueError(f"static weights: unknown tasks {unknown}, missing tasks "
                       f"{missing}; the run's tasks are {names}")
    weights = [weights[n] for n in names]
  if len(weights) != num_tasks:
    raise ValueError(f"static weighting has {len(weights)} weights for "
                     f"{num_tasks} tasks")
  weights_k = jnp.asarray(weights, jnp.float32)

  def update(losses_k, state, **extras):
    del extras
    return weights_k.astype(losses_k.dtype), state

  return LossWeighting(init_empty, update)

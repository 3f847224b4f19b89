"""Trimmed mean (Yin, Chen, Ramchandran & Bartlett, ICML 2018, "Byzantine-Robust
Distributed Learning: Towards Optimal Statistical Rates"; torchjd's TrimmedMean).

Coordinate by coordinate, the `trim_number` largest and smallest task
gradients are dropped and the rest averaged. The result is not a combination
of the task gradients, so it needs per-task gradients of every shared
parameter (`gradient_mode='full'`). Absent tasks are left out (each
coordinate trims and averages the present tasks only); with fewer than
`2 * trim_number + 1` present, the update is their plain mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.weighting.base import GradientAggregation, init_empty, present_mask, register


@register("trimmed_mean")
def trimmed_mean(num_tasks: int, trim_number: int = 1) -> GradientAggregation:
  """The coordinate-wise trimmed mean (see module docstring).

  Args:
    num_tasks: the run's number of tasks (from the run).
    trim_number: how many of the largest and of the smallest values each
      coordinate drops; needs `num_tasks >= 2 * trim_number + 1`.

  Raises:
    ValueError: too few tasks for `trim_number`.
  """
  if trim_number < 0 or num_tasks < 2 * trim_number + 1:
    raise ValueError(f"trimmed_mean: needs trim_number >= 0 and at least 2 * trim_number + 1 "
                     f"tasks; got trim_number={trim_number} with {num_tasks} tasks")

  def update(grads_k, state, **extras):
    leaves, treedef = jax.tree.flatten(grads_k)
    k = leaves[0].shape[0]
    present_k = present_mask(extras, k)
    n_present = jnp.sum(present_k)
    enough = n_present >= 2 * trim_number + 1
    # Sorted positions trim_number .. n_present - trim_number - 1 are kept;
    # absent tasks sort last (+inf) and are never kept.
    position_k = jnp.arange(k, dtype=jnp.float32)
    low = jnp.where(enough, trim_number, 0)
    high = jnp.where(enough, n_present - trim_number, n_present)
    keep_k = ((position_k >= low) & (position_k < high)).astype(jnp.float32)

    def one(leaf_k):
      shape = (k,) + (1,) * (leaf_k.ndim - 1)
      values_k = jnp.where(present_k.reshape(shape) > 0, leaf_k.astype(jnp.float32), jnp.inf)
      sorted_k = jnp.sort(values_k, axis=0)
      kept = jnp.sum(jnp.where(keep_k.reshape(shape) > 0, sorted_k, 0.0), axis=0)
      return (kept / jnp.maximum(high - low, 1.0)).astype(leaf_k.dtype)

    return jax.tree.unflatten(treedef, [one(leaf) for leaf in leaves]), state

  return GradientAggregation(init_empty, update, gradient_mode="full", modes=("full",))

"""Per-task second moments: every task gets an equal say in each shared parameter.

This library's rule, written after its own ablations (experiments/RESULTS.md,
"The multi-task NER loss"): under one AdamW state and one global clip, the
task with the larger gradients (AG News, 3-4x NER's) takes most of each
shared step, while weighting NER's loss up closes most of the gap. A static
weight has to be tuned per task pair; this transform finds the scale itself,
per parameter, from each task's own running second moment, as per-task Adam
states would:

    nu_k  <- beta2 nu_k + (1 - beta2) g_k^2      (only for present tasks)
    rms_k  = sqrt(nu_k / (1 - beta2^count_k))     (bias-corrected)
    update = sum_k g_k * mean_j(rms_j) / rms_k

Each task's gradient is rescaled to the tasks' mean RMS, so the update keeps
the scale of the plain sum (the run's clip and AdamW see gradients of the
usual size) and equals it when the tasks' gradients are the same size; with
one task it is the task's gradient. `per='tensor'` keeps one second moment
per task and parameter tensor instead of per element (the magnitude
adaptation of MetaBalance, He et al., WWW 2022, over all tasks instead of
towards one target task), at k floats per tensor of state instead of k
copies of the shared parameters.

A second rule, `task_clip(max_norm)`, clips each task's shared gradient to
`max_norm` before the sum (instead of one clip of the summed gradient).

Both need the per-task gradients of every shared parameter
(`gradient_mode='full'`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import (GradientAggregation, from_gram, init_empty,
                                    present_mask, register)

PER = ("element", "tensor")


class TaskRMSState(NamedTuple):
  """Per-task running second moments and how many steps each task took part in.

  Attributes:
    nu_k: the shared params' structure; each leaf [k, *shape] (`per='element'`)
      or [k] (`per='tensor'`), float32.
    count_k: [k] int32.
  """

  nu_k: Any
  count_k: jax.Array


@register("task_rms")
def task_rms(beta2: float = 0.999, per: str = "element", *,
             shared_shapes: Any = None) -> GradientAggregation:
  """Each task's shared gradient rescaled to the tasks' mean RMS (module docstring).

  Args:
    beta2: the decay of the running second moments (Adam's default).
    per: 'element' (one moment per task and shared parameter entry) or
      'tensor' (one per task and parameter tensor).
    shared_shapes: the shared parameters' shapes (a pytree of arrays or
      `jax.ShapeDtypeStruct`s; the train step passes them), which the state
      is shaped after.
  """
  if not 0.0 <= beta2 < 1.0:
    raise ValueError(f"task_rms: beta2 must be in [0, 1), got {beta2}")
  if per not in PER:
    raise ValueError(f"task_rms: per must be one of {', '.join(PER)}, got {per!r}")

  def init(num_tasks):
    if shared_shapes is None:
      raise ValueError("task_rms: its state is shaped like the shared parameters; "
                       "build it with weighting.from_spec(..., shared_shapes=...)")
    nu_k = jax.tree.map(
        lambda leaf: jnp.zeros((num_tasks,) + (tuple(leaf.shape) if per == "element"
                                               else ()), jnp.float32), shared_shapes)
    return TaskRMSState(nu_k, jnp.zeros((num_tasks,), jnp.int32))

  def update(grads_k, state, **extras):
    leaves, treedef = jax.tree.flatten(grads_k)
    num_tasks = leaves[0].shape[0]
    present_k = present_mask(extras, num_tasks)
    count_k = state.count_k + (present_k > 0).astype(jnp.int32)
    correction_k = 1.0 - jnp.float32(beta2) ** jnp.maximum(count_k, 1).astype(jnp.float32)

    def one(leaf_k, nu_k):
      leaf_k = leaf_k.astype(jnp.float32)
      square_k = jnp.square(leaf_k)
      if per == "tensor":
        square_k = jnp.mean(square_k.reshape(num_tasks, -1), axis=1)
      shape = (num_tasks,) + (1,) * (nu_k.ndim - 1)
      present = present_k.reshape(shape) > 0
      nu_k = jnp.where(present, beta2 * nu_k + (1.0 - beta2) * square_k, nu_k)
      rms_k = jnp.sqrt(nu_k / correction_k.reshape(shape))
      mean_rms = jnp.sum(jnp.where(present, rms_k, 0.0), axis=0, keepdims=True) / jnp.maximum(
          jnp.sum(present_k), 1.0)
      # rms_k is 0 only where the task's gradient is 0 as well (nu_k holds
      # this step's square), so such entries contribute nothing either way.
      scale_k = jnp.where(present & (rms_k > 0), mean_rms / jnp.where(rms_k > 0, rms_k, 1.0),
                          0.0)
      if per == "tensor":
        scale_k = scale_k.reshape((num_tasks,) + (1,) * (leaf_k.ndim - 1))
      return jnp.sum(scale_k * leaf_k, axis=0), nu_k

    pairs = [one(leaf, nu) for leaf, nu in zip(leaves, jax.tree.leaves(state.nu_k))]
    update = jax.tree.unflatten(treedef, [summed.astype(leaf.dtype)
                                          for (summed, _), leaf in zip(pairs, leaves)])
    nu_k = jax.tree.unflatten(jax.tree.structure(state.nu_k), [nu for _, nu in pairs])
    return update, TaskRMSState(nu_k, count_k)

  return GradientAggregation(init, update, gradient_mode="full", modes=("full",))


@register("task_clip")
def task_clip(max_norm: float = 1.0) -> GradientAggregation:
  """Each task's shared gradient clipped to `max_norm` (L2), then summed.

  Args:
    max_norm: the largest norm a task's shared gradient keeps.
  """
  if not max_norm > 0:
    raise ValueError(f"task_clip: max_norm must be > 0, got {max_norm}")

  def weigh(gram_kk, state, **extras):
    norms_k = linalg.norms_from_gram(gram_kk)
    scale_k = jnp.minimum(1.0, max_norm / jnp.maximum(norms_k, 1e-30))
    return scale_k * present_mask(extras, gram_kk.shape[0]), state

  # The norms must be the whole shared gradient's: only the full mode has them.
  return from_gram(init_empty, weigh, gradient_mode="full", modes=("full",))

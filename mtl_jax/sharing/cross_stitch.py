"""Cross-stitch networks (Misra et al., 2016): per-task encoder copies, linearly mixed.

Every task has its own copy of the upper layers; every copy runs over every
task's rows, and after each upper layer a cross-stitch unit mixes the copies:

    h'_k = Σ_j α_kj h_j      (α: [K, K] per layer, learned)

Task k's head reads copy k. The units start near the identity (α_kk =
`self_weight`, the rest shared equally: Misra et al.'s (0.9, 0.1) for two
tasks), so training starts close to separate per-task encoders.

    params = {"encoder": embeddings + lower layers,    # shared
              "cross_stitch": {"layer_i": α [K, K]},   # shared (row k: into copy k)
              "task_encoders": {task: upper layers},   # per task
              "heads": {task: ...}}                    # per task

`shared_layers=0` (the default) shares only the embeddings, as separate
networks do (the word embeddings are kept shared: a copy per task costs
vocab x hidden each and learns little). `encode` returns the last shared
layer's output; `apply_heads` runs the copies, the units and the heads. The
paper's larger learning rate for the units is not applied.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

from mtl_jax.encoders.config import EncoderConfig
from mtl_jax.sharing.hard import Params, TaskBatch, TaskHead
from mtl_jax.sharing.layerwise import LayerwiseModel


def cross_stitch_init(num_tasks: int, self_weight: float) -> jax.Array:
  """α with `self_weight` on the diagonal and rows summing to 1: [K, K]."""
  if num_tasks == 1:
    return jnp.ones((1, 1), jnp.float32)
  other = (1.0 - self_weight) / (num_tasks - 1)
  return (jnp.full((num_tasks, num_tasks), other, jnp.float32)
          + (self_weight - other) * jnp.eye(num_tasks, dtype=jnp.float32))


class CrossStitchModel(LayerwiseModel):
  """Per-task upper layers mixed by cross-stitch units (see module doc).

  Args:
    encoder_config: the whole encoder's architecture.
    tasks: the tasks' heads.
    shared_layers: lower layers shared (negative: counted from the top).
    self_weight: the units' initial weight of a copy on itself, in (0, 1].
  """

  # `apply_heads` mixes the tasks' representations, so a task's loss reads
  # every task's examples: per-task gradients need one backward pass per task.
  separable_tasks = False

  kind = "cross_stitch"

  def __init__(self, encoder_config: EncoderConfig, tasks: Sequence[TaskHead],
               shared_layers: int = 0, self_weight: float = 0.9):
    super().__init__(encoder_config, tasks, shared_layers)
    if not 0.0 < self_weight <= 1.0:
      raise ValueError(f"sharing.cross_stitch.self_weight must be in (0, 1], got "
                       f"{self_weight}")
    self.self_weight = self_weight

  def init_boxed(self, rng: jax.Array) -> Params:
    params = super().init_boxed(rng)
    # One array per unit: leaves sharing a buffer cannot be donated to the step.
    # The row axis is the receiving task; "task" maps to no mesh axis.
    params["cross_stitch"] = {
        f"layer_{i}": nn.LogicallyPartitioned(
            cross_stitch_init(len(self.task_names), self.self_weight), ("task", None))
        for i in self.task_layers}
    return params

  def task_representations(self, params: Params, hidden: Mapping[str, jax.Array],
                           batch: Mapping[str, TaskBatch], *, train: bool,
                           rng: jax.Array | None) -> dict[str, jax.Array]:
    """Copy k's mixed output for task k's rows: {task: [b, l, d]}."""
    units = params["cross_stitch"]

    def mix(i, h_kbld):
      return jnp.einsum("kj,jbld->kbld", units[f"layer_{i}"].astype(h_kbld.dtype), h_kbld)

    h_kbld, segments = self.all_task_layers(params, hidden, batch, train=train, rng=rng,
                                            mix=mix)
    return {name: h_kbld[k, start:stop] for name, k, start, stop in segments}

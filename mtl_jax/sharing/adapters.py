"""Bottleneck adapters: a small per-task module in every layer of a shared encoder.

An adapter maps a sub-block's output h (after dropout, before the residual
sum and LayerNorm) to h + up(relu(down(h))), with `down`: d -> size and
`up`: size -> d. Placement:

* "houlsby" (Houlsby et al., 2019): after the attention block and after the
  feed-forward block of every layer (two adapters per layer);
* "pfeiffer" (Pfeiffer et al., 2021): after the feed-forward block only.

`up` starts at zero, so at step 0 the model computes exactly what the
encoder does without adapters. With `freeze_encoder` (the default) only the
adapters and heads train: the optimizer leaves `params["encoder"]` bit-
identical (`frozen_keys`), `encode` stops its gradient (no wasted backward
pass through the weights), and the training loop writes the trained part on
its own (`mtl_jax.sharing.save_trainable`) to load onto the same pretrained
encoder later.

    params = {"encoder": the whole encoder,                     # shared (frozen)
              "adapters": {task: {"layer_i": {site: {"down": {"kernel", "bias"},
                                                     "up": {"kernel", "bias"}}}}},
              "heads": {task: ...}}                              # per task

All tasks' rows go through the encoder in one pass; each task's rows
(contiguous in the stacked batch) go through that task's adapters.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np

from mtl_jax.encoders.bert import Encoder
from mtl_jax.encoders.config import EncoderConfig
from mtl_jax.sharing.hard import (HardSharingModel, Params, TaskBatch, TaskHead,
                                  dropout_rngs)

# Which sub-block outputs of a layer get an adapter (`encoders.bert.AdapterHook` sites).
PLACEMENTS = {"houlsby": ("attention", "output"), "pfeiffer": ("output",)}


def bottleneck(params: Params, x_bld: jax.Array) -> jax.Array:
  """x + up(relu(down(x))): one adapter."""
  dtype = x_bld.dtype
  down = nn.Dense(params["down"]["kernel"].shape[-1], dtype=dtype)
  up = nn.Dense(x_bld.shape[-1], dtype=dtype)
  h_bls = jax.nn.relu(down.apply({"params": params["down"]}, x_bld))
  return x_bld + up.apply({"params": params["up"]}, h_bls)


def task_segments(task_ids_b: np.ndarray) -> list[tuple[int, int, int]]:
  """(task, start, stop) of each run of equal task ids (rows are grouped by task)."""
  starts = [0] + [i for i in range(1, len(task_ids_b)) if task_ids_b[i] != task_ids_b[i - 1]]
  stops = starts[1:] + [len(task_ids_b)]
  return [(int(task_ids_b[start]), start, stop) for start, stop in zip(starts, stops)]


class AdapterModel(HardSharingModel):
  """A shared encoder with per-task bottleneck adapters in every layer.

  Args:
    encoder_config: the encoder's architecture.
    tasks: the tasks' heads.
    size: the adapters' bottleneck width.
    placement: "houlsby" (after attention and feed-forward) or "pfeiffer"
      (after feed-forward).
    freeze_encoder: train only the adapters and heads.
  """

  task_keys = ("heads", "adapters")
  compacts_tokens = False  # its encoder reads task parameters row by row
  kind = "adapters"

  def __init__(self, encoder_config: EncoderConfig, tasks: Sequence[TaskHead],
               size: int = 64, placement: str = "houlsby", freeze_encoder: bool = True):
    super().__init__(encoder_config, tasks)
    if placement not in PLACEMENTS:
      raise ValueError(f"sharing.adapters.placement must be one of "
                       f"{', '.join(PLACEMENTS)}, got {placement!r}")
    if size < 1:
      raise ValueError(f"sharing.adapters.size must be >= 1, got {size}")
    self.size = size
    self.placement = placement
    self.sites = PLACEMENTS[placement]
    self.freeze_encoder = freeze_encoder
    self.frozen_keys = ("encoder",) if freeze_encoder else ()

  def init_boxed(self, rng: jax.Array) -> Params:
    params = super().init_boxed(rng)
    d, r = self.encoder_config.hidden_size, self.size
    init = nn.initializers.truncated_normal(self.encoder_config.initializer_range)
    box = nn.LogicallyPartitioned
    adapters_rng = jax.random.fold_in(rng, 1)

    def adapter(key):
      return {"down": {"kernel": box(init(key, (d, r)), ("embed", "adapter")),
                       "bias": box(jnp.zeros((r,)), ("adapter",))},
              "up": {"kernel": box(jnp.zeros((r, d)), ("adapter", "embed")),
                     "bias": box(jnp.zeros((d,)), ("embed",))}}

    params["adapters"] = {}
    for k, name in enumerate(self.task_names):
      task_rng = jax.random.fold_in(adapters_rng, k)
      params["adapters"][name] = {
          f"layer_{i}": {site: adapter(jax.random.fold_in(task_rng, 2 * i + j))
                         for j, site in enumerate(self.sites)}
          for i in range(self.encoder_config.num_layers)}
    return params

  def encode_stacked(self, params: Params, inputs: TaskBatch, task_ids_b: np.ndarray,
                     *, train: bool, rng: jax.Array | None) -> jax.Array:
    """The encoder over all tasks' rows, each task's rows through its adapters."""
    segments = task_segments(task_ids_b)
    adapters = params["adapters"]

    def adapter_hook(layer: str, site: str, x_bld: jax.Array) -> jax.Array:
      if site not in self.sites:
        return x_bld
      return jnp.concatenate([
          bottleneck(adapters[self.task_names[k]][layer][site], x_bld[start:stop])
          for k, start, stop in segments])

    encoder_params = params["encoder"]
    if self.freeze_encoder:
      encoder_params = jax.lax.stop_gradient(encoder_params)
    return Encoder(self.encoder_config, adapter=adapter_hook).apply(
        {"params": encoder_params}, inputs["input_ids"], inputs["attention_mask"],
        inputs["token_type_ids"], deterministic=not train, rngs=dropout_rngs(rng, 0, train))

"""Layer-wise sharing: the lower layers shared, the upper layers one copy per task.

    params = {"encoder": {"embeddings", "layer_0" ... "layer_{N-1}"},  # shared
              "task_encoders": {task: {"layer_N" ... "layer_{L-1}"}},  # per task
              "heads": {task: ...}}                                    # per task

`encode` returns the output of the last shared layer (for every task's rows,
in one stacked pass), so gradient-balancing methods that take per-task
gradients at the shared representation take them exactly there;
`apply_heads` runs each task's own upper layers, then its head. The per-task
copies keep the full encoder's layer names, so a pretrained encoder fills
both parts (`with_encoder` copies its upper layers into every task).

`shared_layers=0` shares only the embeddings; negative values count from the
top (-1: every layer but the last is shared).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.encoders.bert import Encoder
from mtl_jax.encoders.config import EncoderConfig
from mtl_jax.sharing.hard import (HardSharingModel, Params, TaskBatch, TaskHead,
                                  dropout_rngs)


def resolve_shared_layers(shared_layers: int, num_layers: int, kind: str) -> int:
  """The number of shared lower layers; negative counts from the top.

  Raises:
    ValueError: no layer would be left per task, or more layers than the
      encoder has.
  """
  shared = shared_layers + num_layers if shared_layers < 0 else shared_layers
  if not 0 <= shared < num_layers:
    raise ValueError(
        f"sharing.{kind}.shared_layers={shared_layers}: the encoder has {num_layers} "
        f"layers, so it must be in [{-num_layers}, {num_layers - 1}] (at least one "
        "layer per task; sharing every layer is kind='hard')")
  return shared


def separate_copy(tree: Params) -> Params:
  """A copy of `tree` in buffers of its own: copies are trained apart and donated
  to the step as separate buffers. jnp (not np), so that this also runs traced,
  in the run's jitted init."""
  return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


class LayerwiseModel(HardSharingModel):
  """Shared embeddings and lower layers, a copy of the upper layers per task.

  Args:
    encoder_config: the whole encoder's architecture.
    tasks: the tasks' heads.
    shared_layers: how many lower layers all tasks share (see module doc).
  """

  task_keys = ("heads", "task_encoders")
  kind = "layerwise"

  def __init__(self, encoder_config: EncoderConfig, tasks: Sequence[TaskHead],
               shared_layers: int = -1):
    super().__init__(encoder_config, tasks)
    num_layers = encoder_config.num_layers
    self.shared_layers = resolve_shared_layers(shared_layers, num_layers, self.kind)
    self.task_layers = tuple(range(self.shared_layers, num_layers))
    self.encoder = Encoder(encoder_config, layers=tuple(range(self.shared_layers)))
    self.task_encoder = Encoder(encoder_config, layers=self.task_layers,
                                embeddings=False)

  def init_boxed(self, rng: jax.Array) -> Params:
    params = super().init_boxed(rng)
    hidden_bld = jnp.zeros((1, 8, self.encoder_config.hidden_size), jnp.float32)
    mask_bl = jnp.ones((1, 8), jnp.int32)
    copies_rng = jax.random.fold_in(rng, 1)
    params["task_encoders"] = {
        name: self.task_encoder.init(jax.random.fold_in(copies_rng, k), hidden_bld,
                                     mask_bl)["params"]
        for k, name in enumerate(self.task_names)}
    return params

  def with_encoder(self, params: Params, encoder_params: Params) -> Params:
    """Puts a whole encoder in place: its lower part shared, its upper layers per task."""
    upper = [f"layer_{i}" for i in self.task_layers]
    shared = {k: v for k, v in encoder_params.items() if k not in upper}
    copies = {name: {k: separate_copy(encoder_params[k]) for k in upper}
              for name in self.task_names}
    return {**params, "encoder": shared, "task_encoders": copies}

  def task_dropout_rngs(self, rng: jax.Array | None, k: int, train: bool,
                        layer: int | None = None):
    """Dropout keys of task k's copy (or of its layer `layer`).

    Apart from the keys of the encoder (0) and of the heads (1..K).
    """
    rngs = dropout_rngs(rng, len(self.task_names) + 1 + k, train)
    if layer is not None and train:
      rngs = dropout_rngs(rngs["dropout"], layer, train)
    return rngs

  def task_representations(self, params: Params, hidden: Mapping[str, jax.Array],
                           batch: Mapping[str, TaskBatch], *, train: bool,
                           rng: jax.Array | None) -> dict[str, jax.Array]:
    """Each task's upper layers over its shared hidden states: {task: [b, l, d]}."""
    return {name: self.task_encoder.apply(
                {"params": params["task_encoders"][name]}, hidden[name],
                batch[name]["attention_mask"], deterministic=not train,
                rngs=self.task_dropout_rngs(rng, k, train))
            for k, name in enumerate(self.task_names) if name in hidden}

  def all_task_layers(self, params: Params, hidden: Mapping[str, jax.Array],
                      batch: Mapping[str, TaskBatch], *, train: bool,
                      rng: jax.Array | None, mix=None
                      ) -> tuple[jax.Array, list[tuple[str, int, int, int]]]:
    """Every task's upper layers over the rows of all tasks (soft sharing).

    Args:
      params, hidden, batch, train, rng: as `apply_heads`.
      mix: optional `mix(layer_index, h_kbld) -> h_kbld`, applied after each
        upper layer across the task copies (cross-stitch units).

    Returns:
      (h_kbld: copy k's output for every row, segments: (task, k, start,
      stop) rows of each task present).
    """
    names = [n for n in self.task_names if n in hidden]
    x_bld = jnp.concatenate([hidden[n] for n in names])
    mask_bl = jnp.concatenate([batch[n]["attention_mask"] for n in names])
    offsets = np.cumsum([0] + [hidden[n].shape[0] for n in names])
    segments = [(n, self.task_names.index(n), int(start), int(stop))
                for n, start, stop in zip(names, offsets, offsets[1:])]
    h_kbld = jnp.stack([x_bld] * len(self.task_names))
    for i in self.task_layers:
      layer = Encoder(self.encoder_config, layers=(i,), embeddings=False)
      h_kbld = jnp.stack([
          layer.apply({"params": {f"layer_{i}": params["task_encoders"][name][f"layer_{i}"]}},
                      h_kbld[k], mask_bl, deterministic=not train,
                      rngs=self.task_dropout_rngs(rng, k, train, layer=i))
          for k, name in enumerate(self.task_names)])
      if mix is not None:
        h_kbld = mix(i, h_kbld)
    return h_kbld, segments

  def apply_heads(self, params: Params, hidden: Mapping[str, jax.Array],
                  batch: Mapping[str, TaskBatch], *, train: bool,
                  rng: jax.Array | None = None) -> dict[str, jax.Array]:
    """The per-task upper layers, then each task's head: {task: logits}."""
    hidden = self.task_representations(params, hidden, batch, train=train, rng=rng)
    return super().apply_heads(params, hidden, batch, train=train, rng=rng)

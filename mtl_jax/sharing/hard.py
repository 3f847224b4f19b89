"""Hard parameter sharing: one encoder for every task, one head per task.

The model is a pair of pure functions over a plain params pytree
`{"encoder": ..., "heads": {task: ...}}`. `encode` runs the shared encoder
once over the batches of all tasks stacked together (bigger matrix products
than one pass per task) and returns each task's hidden states; `apply_heads`
maps them to each task's outputs. Keeping the two apart lets balancing
methods take per-task gradients at the shared representation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

from mtl_jax.encoders.bert import Encoder
from mtl_jax.encoders.config import EncoderConfig

Params = dict[str, Any]
TaskBatch = Mapping[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class TaskHead:
  """What the model needs of a task: its name, kind object, labels and head options."""

  name: str
  kind: Any
  num_labels: int
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class HardSharingModel:
  """A shared `Encoder` and a head per task; see the module docstring."""

  # Task t's loss reads the shared params only through task t's own examples,
  # so per-task gradients cost one backward pass (`training/gradients.py`).
  separable_tasks = True

  def __init__(self, encoder_config: EncoderConfig, tasks: Sequence[TaskHead]):
    self.encoder_config = encoder_config
    self.tasks = tuple(tasks)
    self.task_names = tuple(t.name for t in self.tasks)
    self.encoder = Encoder(encoder_config)
    self.heads = {t.name: t.kind.head(t.num_labels, t.options) for t in self.tasks}

  def init_boxed(self, rng: jax.Array) -> Params:
    """Params with their logical axis names (flax `LogicallyPartitioned` leaves)."""
    ids = jnp.zeros((1, 8), jnp.int32)
    hidden = jnp.zeros((1, 8, self.encoder_config.hidden_size), jnp.float32)
    encoder_rng, head_rng = jax.random.split(rng)
    params = {"encoder": self.encoder.init(encoder_rng, ids, ids, ids)["params"],
              "heads": {}}
    for i, (name, head) in enumerate(self.heads.items()):
      params["heads"][name] = head.init(jax.random.fold_in(head_rng, i), hidden, ids,
                                        deterministic=True)["params"]
    return params

  def init(self, rng: jax.Array) -> Params:
    """A plain params pytree (arrays only)."""
    return nn.unbox(self.init_boxed(rng))

  def logical_axes(self) -> Params:
    """The params pytree with a `PartitionSpec` of logical axis names per leaf."""
    return nn.get_partition_spec(jax.eval_shape(self.init_boxed, jax.random.key(0)))

  def encode(self, params: Params, batch: Mapping[str, TaskBatch], *, train: bool,
             rng: jax.Array | None = None) -> dict[str, jax.Array]:
    """Shared hidden states of each task's batch: {task: [b_t, l, d]}.

    All task batches must share their length (the batcher pads them so).
    """
    names = [n for n in self.task_names if n in batch]
    sizes = [batch[n]["input_ids"].shape[0] for n in names]
    stacked = {key: jnp.concatenate([batch[n][key] for n in names])
               for key in ("input_ids", "token_type_ids", "attention_mask")}
    rngs = {"dropout": jax.random.fold_in(rng, 0)} if train else {}
    hidden = self.encoder.apply(
        {"params": params["encoder"]}, stacked["input_ids"],
        stacked["attention_mask"], stacked["token_type_ids"],
        deterministic=not train, rngs=rngs)
    offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    return {n: hidden[start:stop] for n, start, stop in zip(names, offsets, offsets[1:])}

  def apply_heads(self, params: Params, hidden: Mapping[str, jax.Array],
                  batch: Mapping[str, TaskBatch], *, train: bool,
                  rng: jax.Array | None = None) -> dict[str, jax.Array]:
    """Each task's head over its hidden states: {task: logits}."""
    outputs = {}
    for i, name in enumerate(self.task_names):
      if name not in hidden:
        continue
      rngs = {"dropout": jax.random.fold_in(rng, i + 1)} if train else {}
      outputs[name] = self.heads[name].apply(
          {"params": params["heads"][name]}, hidden[name],
          batch[name]["attention_mask"], deterministic=not train, rngs=rngs)
    return outputs

  def apply(self, params: Params, batch: Mapping[str, TaskBatch], *, train: bool,
            rng: jax.Array | None = None) -> dict[str, jax.Array]:
    """Outputs (logits) of every task present in `batch`."""
    hidden = self.encode(params, batch, train=train, rng=rng)
    return self.apply_heads(params, hidden, batch, train=train, rng=rng)

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
import numpy as np

from mtl_jax.constants import TOKEN_SLOTS
from mtl_jax.encoders.bert import Encoder
from mtl_jax.encoders.config import EncoderConfig
from mtl_jax.heads import Output, output_of

Params = dict[str, Any]
TaskBatch = Mapping[str, jax.Array]
_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def stack_tasks(batch: Mapping[str, TaskBatch], names: Sequence[str]
                ) -> tuple[dict[str, jax.Array], list[int]]:
  """The encoder inputs of the tasks `names`, stacked along the batch axis.

  Returns:
    ({input: [sum of b_t, l]}, [b_t per task]); the batch's `TOKEN_SLOTS`
    entry, where it has one, is passed on as it is.
  """
  stacked = {key: jnp.concatenate([batch[n][key] for n in names]) for key in _INPUTS}
  if TOKEN_SLOTS in batch:  # the compact buffer's capacity, a shape (see `encode_stacked`)
    stacked[TOKEN_SLOTS] = batch[TOKEN_SLOTS]
  return stacked, [batch[n]["input_ids"].shape[0] for n in names]


def split_tasks(x_b: jax.Array, names: Sequence[str], sizes: Sequence[int]
                ) -> dict[str, jax.Array]:
  """The inverse of `stack_tasks` for an array with leading batch axis."""
  offsets = np.cumsum([0, *sizes])
  return {n: x_b[start:stop] for n, start, stop in zip(names, offsets, offsets[1:])}


def dropout_rngs(rng: jax.Array | None, index: int, train: bool) -> dict[str, jax.Array]:
  """The `rngs` of one module's apply: its own dropout key when training."""
  return {"dropout": jax.random.fold_in(rng, index)} if train else {}


@dataclasses.dataclass(frozen=True)
class TaskHead:
  """What the model needs of a task: its name, kind object, labels and head options."""

  name: str
  kind: Any
  num_labels: int
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class HardSharingModel:
  """A shared `Encoder` and a head per task; see the module docstring.

  The other architectures (`mtl_jax.sharing`) extend this class: they keep
  its heads and change what the encoder part computes.
  """

  # Top-level params entries that are `{task: ...}` sub-trees (one copy per
  # task); every other entry is shared by all tasks.
  task_keys: tuple[str, ...] = ("heads",)
  # Top-level params entries the optimizer leaves unchanged.
  frozen_keys: tuple[str, ...] = ()

  # Task t's loss reads the shared params only through task t's own examples,
  # so per-task gradients cost one backward pass (`training/gradients.py`).
  separable_tasks = True

  # `encode_stacked` runs the shared encoder over the stacked rows, so it can
  # compute on the real tokens only (`train.token_buckets`); False where an
  # architecture's encoder reads per-task parameters row by row.
  compacts_tokens = True

  def __init__(self, encoder_config: EncoderConfig, tasks: Sequence[TaskHead]):
    self.encoder_config = encoder_config
    self.tasks = tuple(tasks)
    self.task_names = tuple(t.name for t in self.tasks)
    self.encoder = Encoder(encoder_config)
    # The model side of each task's kind: its head, loss and prediction.
    self.outputs: dict[str, Output] = {t.name: output_of(t.kind) for t in self.tasks}
    self.heads = {t.name: self.outputs[t.name].build(t.kind, t.num_labels, t.options)
                  for t in self.tasks}

  def init_boxed(self, rng: jax.Array) -> Params:
    """Params with their logical axis names (flax `LogicallyPartitioned` leaves)."""
    ids = jnp.zeros((1, 8), jnp.int32)
    encoder_rng, head_rng = jax.random.split(rng)
    return {"encoder": self.encoder.init(encoder_rng, ids, ids, ids)["params"],
            "heads": self.init_heads_boxed(head_rng)}

  def init_heads_boxed(self, rng: jax.Array) -> Params:
    """The heads' boxed params: {task: ...}."""
    ids = jnp.zeros((1, 8), jnp.int32)
    hidden = jnp.zeros((1, 8, self.encoder_config.hidden_size), jnp.float32)
    return {name: head.init(jax.random.fold_in(rng, i), hidden, ids,
                            deterministic=True)["params"]
            for i, (name, head) in enumerate(self.heads.items())}

  def with_encoder(self, params: Params, encoder_params: Params) -> Params:
    """`params` with a whole encoder's params (e.g. pretrained) put in place."""
    return {**params, "encoder": encoder_params}

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
    inputs, sizes = stack_tasks(batch, names)
    task_ids_b = np.repeat([self.task_names.index(n) for n in names], sizes)
    hidden_bld = self.encode_stacked(params, inputs, task_ids_b, train=train, rng=rng)
    return split_tasks(hidden_bld, names, sizes)

  def encode_stacked(self, params: Params, inputs: TaskBatch, task_ids_b: np.ndarray,
                     *, train: bool, rng: jax.Array | None) -> jax.Array:
    """The encoder over the rows of all tasks stacked: [b, l, d].

    Args:
      params: the model's params.
      inputs: `input_ids`, `attention_mask`, `token_type_ids` [b, l], and
        optionally `TOKEN_SLOTS` [c, 0]: compute on the real tokens only, in
        a buffer of c rows (`encoders.compaction`).
      task_ids_b: the task (index in `task_names`) of each row; static.
      train: dropout on (needs `rng`).
      rng: the step's key.
    """
    del task_ids_b  # every task sees the same encoder
    capacity = inputs[TOKEN_SLOTS].shape[0] if TOKEN_SLOTS in inputs else None
    return self.encoder.apply(
        {"params": params["encoder"]}, inputs["input_ids"], inputs["attention_mask"],
        inputs["token_type_ids"], deterministic=not train, capacity=capacity,
        rngs=dropout_rngs(rng, 0, train))

  def apply_heads(self, params: Params, hidden: Mapping[str, jax.Array],
                  batch: Mapping[str, TaskBatch], *, train: bool,
                  rng: jax.Array | None = None) -> dict[str, jax.Array]:
    """Each task's head over its hidden states: {task: logits}."""
    outputs = {}
    for i, name in enumerate(self.task_names):
      if name not in hidden:
        continue
      # Batch arrays a kind's head reads besides the encoder output (e.g. a
      # seq2seq decoder's teacher-forcing inputs).
      inputs = {key: batch[name][key] for key in self.outputs[name].inputs}
      outputs[name] = self.heads[name].apply(
          {"params": params["heads"][name]}, hidden[name],
          batch[name]["attention_mask"], deterministic=not train,
          rngs=dropout_rngs(rng, i + 1, train), **inputs)
    return outputs

  def apply(self, params: Params, batch: Mapping[str, TaskBatch], *, train: bool,
            rng: jax.Array | None = None) -> dict[str, jax.Array]:
    """Outputs (logits) of every task present in `batch`."""
    hidden = self.encode(params, batch, train=train, rng=rng)
    return self.apply_heads(params, hidden, batch, train=train, rng=rng)

  def losses(self, outputs: Mapping[str, Any], batch: Mapping[str, TaskBatch]
             ) -> jax.Array:
    """Each task's loss, in `task_names` order: float32 [k] (tasks of `outputs` only)."""
    return jnp.stack([self.outputs[t.name].loss(t.kind, outputs[t.name], batch[t.name])
                      for t in self.tasks if t.name in outputs])

  def predict(self, outputs: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Each task's on-device prediction from its outputs (label ids, scores, tokens)."""
    by_name = {t.name: t for t in self.tasks}
    return {name: self.outputs[name].predict(by_name[name].kind, out)
            for name, out in outputs.items()}

  def scores(self, outputs: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Each label's probability, for the tasks whose kind has them (`Output.scores`)."""
    return {name: self.outputs[name].scores(out.astype(jnp.float32))
            for name, out in outputs.items() if self.outputs[name].scores is not None}

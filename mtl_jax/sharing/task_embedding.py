"""Full sharing with a task embedding: one encoder, told which task it serves.

A learned vector per task is added to every token's input embedding (after
the embeddings' LayerNorm and dropout, before the first layer), so the whole
encoder is shared and still task-aware, as a segment embedding tells BERT
which sentence a token is in.

The issue's "one head space" cannot hold tasks of different kinds or label
sets (a tag per token vs a class per text, 9 NER tags vs 4 topics), so each
task keeps its own head; the task embedding is what makes the shared part
task-conditional.

    params = {"encoder": the whole encoder,             # shared
              "task_embedding": {task: [d]},            # per task
              "heads": {task: ...}}                     # per task

`encode` returns the encoder's output for each task's rows (it depends on
the task through its embedding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np

from mtl_jax.encoders.bert import Encoder
from mtl_jax.sharing.hard import HardSharingModel, Params, TaskBatch, dropout_rngs


class TaskEmbeddingModel(HardSharingModel):
  """A fully shared encoder whose input carries a learned task embedding."""

  task_keys = ("heads", "task_embedding")
  compacts_tokens = False  # its encoder reads task parameters row by row
  kind = "task_embedding"

  def init_boxed(self, rng: jax.Array) -> Params:
    params = super().init_boxed(rng)
    init = nn.initializers.truncated_normal(self.encoder_config.initializer_range)
    task_rng = jax.random.fold_in(rng, 1)
    params["task_embedding"] = {
        name: nn.LogicallyPartitioned(
            init(jax.random.fold_in(task_rng, k), (self.encoder_config.hidden_size,)),
            ("embed",))
        for k, name in enumerate(self.task_names)}
    return params

  def encode_stacked(self, params: Params, inputs: TaskBatch, task_ids_b: np.ndarray,
                     *, train: bool, rng: jax.Array | None) -> jax.Array:
    """Embeddings + each row's task vector, then the encoder's layers."""
    encoder = params["encoder"]
    rngs = dropout_rngs(rng, 0, train)
    x_bld = Encoder(self.encoder_config, layers=()).apply(
        {"params": {"embeddings": encoder["embeddings"]}}, inputs["input_ids"],
        inputs["attention_mask"], inputs["token_type_ids"], deterministic=not train,
        rngs=rngs)
    table_kd = jnp.stack([params["task_embedding"][n] for n in self.task_names])
    x_bld = x_bld + table_kd[task_ids_b].astype(x_bld.dtype)[:, None, :]
    layers = {k: v for k, v in encoder.items() if k != "embeddings"}
    return Encoder(self.encoder_config, embeddings=False).apply(
        {"params": layers}, x_bld, inputs["attention_mask"], deterministic=not train,
        rngs=rngs)

"""Soft sharing by multi-task attention over the tasks' representations.

Every task has its own copy of the upper layers (as layer-wise sharing);
every copy runs over every task's rows, giving the representations h_j
(j over all tasks) of each token. Task i's representation x_i = h_i then
attends over all of them, per token:

    e_ij = vᵀ tanh(W1 x_i + W2 h_j),   α_i = softmax_j(e_i),   y_i = Σ_j α_ij h_j

and y_i goes to task i's head. W1, W2 ([d, a]) and v ([a]) are shared by the
tasks, as in the formula; no biases.

    params = {"encoder": embeddings + lower layers,            # shared
              "task_attention": {"query": W1, "key": W2, "score": v},  # shared
              "task_encoders": {task: upper layers},           # per task, but every
              "heads": {task: ...}}                            # task's rows use all

`encode` returns the last shared layer's output (where gradient-balancing
methods take per-task gradients); `apply_heads` runs the copies, the
attention and the heads. The copies and the attention are reached by every
task's loss, so they train on the weighted sum of the task losses.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

from mtl_jax.encoders.config import EncoderConfig
from mtl_jax.sharing.hard import Params, TaskBatch, TaskHead
from mtl_jax.sharing.layerwise import LayerwiseModel


def multi_task_attention(x_bld: jax.Array, h_kbld: jax.Array, w1_da: jax.Array,
                         w2_da: jax.Array, v_a: jax.Array) -> jax.Array:
  """y = Σ_j α_j h_j with α = softmax_j(vᵀ tanh(W1 x + W2 h_j)), per token.

  Args:
    x_bld: the querying task's representation of each token.
    h_kbld: every task's representation of the same tokens.
    w1_da, w2_da, v_a: the attention's parameters.

  Returns:
    y_bld, float32.
  """
  x_bld, h_kbld = x_bld.astype(jnp.float32), h_kbld.astype(jnp.float32)
  query_bla = x_bld @ w1_da
  keys_kbla = h_kbld @ w2_da
  scores_kbl = jnp.tanh(query_bla[None] + keys_kbla) @ v_a
  alpha_kbl = jax.nn.softmax(scores_kbl, axis=0)
  return jnp.einsum("kbl,kbld->bld", alpha_kbl, h_kbld)


class MultiTaskAttentionModel(LayerwiseModel):
  """Per-task upper layers whose outputs each task attends over (see module doc).

  Args:
    encoder_config: the whole encoder's architecture.
    tasks: the tasks' heads.
    shared_layers: lower layers shared (negative: counted from the top).
    attention_size: a, the width of the attention's tanh layer.
  """

  # `apply_heads` mixes the tasks' representations, so a task's loss reads
  # every task's examples: per-task gradients need one backward pass per task.
  separable_tasks = False

  kind = "mtl_attention"

  def __init__(self, encoder_config: EncoderConfig, tasks: Sequence[TaskHead],
               shared_layers: int = -1, attention_size: int = 128):
    super().__init__(encoder_config, tasks, shared_layers)
    if attention_size < 1:
      raise ValueError(f"sharing.mtl_attention.attention_size must be >= 1, got "
                       f"{attention_size}")
    self.attention_size = attention_size

  def init_boxed(self, rng: jax.Array) -> Params:
    params = super().init_boxed(rng)
    d, a = self.encoder_config.hidden_size, self.attention_size
    init = nn.initializers.truncated_normal(self.encoder_config.initializer_range)
    w1_rng, w2_rng, v_rng = jax.random.split(jax.random.fold_in(rng, 2), 3)
    params["task_attention"] = {
        "query": nn.LogicallyPartitioned(init(w1_rng, (d, a)), ("embed", "task_attention")),
        "key": nn.LogicallyPartitioned(init(w2_rng, (d, a)), ("embed", "task_attention")),
        "score": nn.LogicallyPartitioned(init(v_rng, (a,)), ("task_attention",)),
    }
    return params

  def task_representations(self, params: Params, hidden: Mapping[str, jax.Array],
                           batch: Mapping[str, TaskBatch], *, train: bool,
                           rng: jax.Array | None) -> dict[str, jax.Array]:
    """y_i of each task's rows: {task: [b, l, d]}."""
    h_kbld, segments = self.all_task_layers(params, hidden, batch, train=train, rng=rng)
    attention = params["task_attention"]
    return {name: multi_task_attention(h_kbld[k, start:stop], h_kbld[:, start:stop],
                                       attention["query"], attention["key"],
                                       attention["score"])
            for name, k, start, stop in segments}

"""Sequence classification: pool the encoder output, then a small MLP to logits."""

from __future__ import annotations

import jax.numpy as jnp
import flax.linen as nn
import optax

from mtl_jax.encoders.bert import mean_pool

_KERNEL = nn.initializers.normal(0.02)


def dense(features: int, names: tuple[str, str], name: str) -> nn.Dense:
  """A Dense layer whose kernel and bias carry logical axis names."""
  return nn.Dense(
      features, name=name,
      kernel_init=nn.with_logical_partitioning(_KERNEL, names),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), names[1:]))


def pool(hidden_bld, attention_mask_bl, pooling: str):
  """The sequence representation: the [CLS] state or the mean of real tokens."""
  if pooling == "cls":
    return hidden_bld[:, 0]
  if pooling == "mean":
    return mean_pool(hidden_bld, attention_mask_bl)
  raise ValueError(f"unknown pooling {pooling!r}; use 'cls' or 'mean'")


class SequenceClassificationHead(nn.Module):
  """pool -> dense + tanh (BERT's pooler) -> dropout -> logits.

  Attributes:
    num_outputs: number of classes (or regression outputs).
    pooling: 'cls' or 'mean'.
    dropout: dropout rate before the output layer.
  """

  num_outputs: int
  pooling: str = "cls"
  dropout: float = 0.1

  @nn.compact
  def __call__(self, hidden_bld, attention_mask_bl, *, deterministic: bool):
    x_bd = pool(hidden_bld, attention_mask_bl, self.pooling).astype(jnp.float32)
    d = x_bd.shape[-1]
    x_bd = jnp.tanh(dense(d, ("embed", "head_hidden"), "pooler")(x_bd))
    x_bd = nn.Dropout(self.dropout)(x_bd, deterministic=deterministic)
    return dense(self.num_outputs, ("head_hidden", "labels"), "output")(x_bd)


def classification_loss(logits_bc, labels_b, example_mask_b):
  """Mean softmax cross-entropy over the real examples of the batch.

  Args:
    logits_bc: [b, classes] float logits.
    labels_b: [b] int class ids (any value on padding rows).
    example_mask_b: [b] 1 for real examples, 0 for padding rows.

  Returns:
    A float32 scalar; 0 when the batch has no real examples.
  """
  mask_b = example_mask_b.astype(jnp.float32)
  labels_b = jnp.where(mask_b > 0, labels_b, 0)
  losses_b = optax.softmax_cross_entropy_with_integer_labels(
      logits_bc.astype(jnp.float32), labels_b)
  return jnp.sum(losses_b * mask_b) / jnp.maximum(jnp.sum(mask_b), 1.0)

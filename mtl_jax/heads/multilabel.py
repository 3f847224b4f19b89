"""Multi-label classification: one sigmoid output per label."""

from __future__ import annotations

import jax.numpy as jnp
import optax


def multilabel_loss(logits_bc, labels_bc, example_mask_b):
  """Binary cross-entropy averaged over labels and the real examples.

  Args:
    logits_bc: [b, labels] float logits.
    labels_bc: [b, labels] 0/1 gold label sets.
    example_mask_b: [b] 1 for real examples, 0 for padding rows.

  Returns:
    A float32 scalar; 0 when the batch has no real examples.
  """
  mask_b = example_mask_b.astype(jnp.float32)
  losses_bc = optax.sigmoid_binary_cross_entropy(logits_bc.astype(jnp.float32),
                                                 labels_bc.astype(jnp.float32))
  losses_b = jnp.mean(losses_bc, axis=-1)
  return jnp.sum(losses_b * mask_b) / jnp.maximum(jnp.sum(mask_b), 1.0)

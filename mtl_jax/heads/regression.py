"""Regression: the sequence head with one output, trained on the squared error."""

from __future__ import annotations

import jax.numpy as jnp


def regression_loss(predictions_b, targets_b, example_mask_b):
  """Mean squared error over the real examples of the batch.

  Args:
    predictions_b: [b] float predictions.
    targets_b: [b] float targets (any value on padding rows).
    example_mask_b: [b] 1 for real examples, 0 for padding rows.

  Returns:
    A float32 scalar; 0 when the batch has no real examples.
  """
  mask_b = example_mask_b.astype(jnp.float32)
  errors_b = predictions_b.astype(jnp.float32) - targets_b.astype(jnp.float32)
  return jnp.sum(jnp.square(errors_b) * mask_b) / jnp.maximum(jnp.sum(mask_b), 1.0)

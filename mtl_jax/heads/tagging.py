"""Token classification (tagging): a linear layer over every sub-word state."""

from __future__ import annotations

import jax.numpy as jnp
import flax.linen as nn
import optax

from mtl_jax.heads.classification import dense
from mtl_jax.constants import IGNORE_LABEL


class TokenClassificationHead(nn.Module):
  """dropout -> logits per token.

  Attributes:
    num_labels: number of tags.
    dropout: dropout rate before the output layer.
  """

  num_labels: int
  dropout: float = 0.1

  @nn.compact
  def __call__(self, hidden_bld, attention_mask_bl, *, deterministic: bool):
    del attention_mask_bl  # the loss masks padding through IGNORE_LABEL
    x_bld = nn.Dropout(self.dropout)(hidden_bld.astype(jnp.float32),
                                     deterministic=deterministic)
    return dense(self.num_labels, ("embed", "labels"), "output")(x_bld)


def tagging_loss(logits_blc, labels_bl):
  """Mean cross-entropy over labelled sub-words (labels != IGNORE_LABEL).

  Args:
    logits_blc: [b, l, tags] float logits.
    labels_bl: [b, l] int tag ids; IGNORE_LABEL for later sub-words of a word,
      special tokens and padding.

  Returns:
    A float32 scalar; 0 when no token is labelled.
  """
  mask_bl = (labels_bl != IGNORE_LABEL).astype(jnp.float32)
  losses_bl = optax.softmax_cross_entropy_with_integer_labels(
      logits_blc.astype(jnp.float32), jnp.where(mask_bl > 0, labels_bl, 0))
  return jnp.sum(losses_bl * mask_bl) / jnp.maximum(jnp.sum(mask_bl), 1.0)

"""The model side of each task kind: its head module, loss and on-device prediction.

A task kind (`mtl_jax.tasks.kinds`) is data: what a task reads, how it is
tokenized and labelled, how predictions are scored. What the model does with
a kind lives here, chosen by the kind's `base_name`:

| kind (`base_name`) | head | loss | prediction |
| --- | --- | --- | --- |
| classification | pooled (or decoder) -> logits | softmax CE | argmax |
| regression | pooled -> 1 output | squared error | the output |
| multilabel | pooled -> one logit per label | sigmoid CE per label | sigmoid > `kind.threshold` |
| tagging | per token -> logits | per-token softmax CE | argmax per token |
| seq2seq | Transformer decoder | per-token CE | greedy decoding |

The kind object is passed in, never imported: the head reads only the
options it declares (`threshold`), so a new kind needs a `register_kind`
(data) and an `OUTPUTS.register` (model), nothing more.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtl_jax.heads.classification import SequenceClassificationHead, classification_loss
from mtl_jax.heads.decoder import (DecoderClassificationHead, Seq2SeqHead, TokenDecoder,
                                   decoder_options)
from mtl_jax.heads.multilabel import multilabel_loss
from mtl_jax.heads.regression import regression_loss
from mtl_jax.heads.tagging import TokenClassificationHead, tagging_loss
from mtl_jax.registry import Registry

Batch = Mapping[str, jax.Array]


class Output(NamedTuple):
  """What the model does for one kind.

  Attributes:
    build: `build(kind, num_outputs, options) -> nn.Module`, the head from the
      task's head options; called as `head(hidden_bld, attention_mask_bl,
      deterministic=..., **inputs)`.
    loss: `loss(kind, outputs, batch) -> float32 []`, the task's mean loss
      over its real examples.
    predict: `predict(kind, outputs) -> array`, on device, one row per example.
    inputs: batch arrays the head reads besides the encoder output (e.g. a
      decoder's teacher-forcing inputs).
    scores: `scores(outputs) -> array`, each label's probability ([b, labels],
      tagging [b, l, labels]); None where the prediction is its own score
      (regression) or is generated text.
  """

  build: Callable[[Any, int, Mapping[str, Any]], nn.Module]
  loss: Callable[[Any, Any, Batch], jax.Array]
  predict: Callable[[Any, Any], jax.Array]
  inputs: tuple[str, ...] = ()
  scores: Callable[[Any], jax.Array] | None = None


OUTPUTS: Registry[Output] = Registry("output (head) for task kind")


def output_of(kind: Any) -> Output:
  """The `Output` of a kind object, by its `base_name`."""
  return OUTPUTS[kind.base_name]


def _rows(batch: Batch) -> jax.Array:
  """1 for real examples, 0 for padding rows (an all-zero attention mask)."""
  return batch["attention_mask"][:, 0]


def pooled_head(kind: Any, num_outputs: int, options: Mapping[str, Any]) -> nn.Module:
  """The pooled head, or with `type='decoder'` learned queries decoding the output."""
  head_type = options.get("type", "pooled")
  if head_type not in ("pooled", "decoder"):
    raise ValueError(f"{kind.name} head: unknown type {head_type!r}; use 'pooled' or "
                     "'decoder'")
  if head_type == "decoder":
    return DecoderClassificationHead(num_outputs, **decoder_options(
        options, DecoderClassificationHead))
  return SequenceClassificationHead(num_outputs=num_outputs,
                                    pooling=options.get("pooling", "cls"),
                                    dropout=options.get("dropout", 0.1))


def _argmax(kind, outputs):
  del kind
  return jnp.argmax(outputs, axis=-1)


OUTPUTS.register("classification", Output(
    pooled_head,
    lambda kind, outputs, batch: classification_loss(outputs, batch["labels"], _rows(batch)),
    _argmax, scores=jax.nn.softmax))
OUTPUTS.register("regression", Output(
    pooled_head,
    lambda kind, outputs, batch: regression_loss(outputs[:, 0], batch["labels"],
                                                 _rows(batch)),
    lambda kind, outputs: outputs[:, 0]))
OUTPUTS.register("multilabel", Output(
    pooled_head,
    lambda kind, outputs, batch: multilabel_loss(outputs, batch["labels"], _rows(batch)),
    lambda kind, outputs: (jax.nn.sigmoid(outputs) > kind.threshold).astype(jnp.int32),
    scores=jax.nn.sigmoid))
OUTPUTS.register("tagging", Output(
    lambda kind, num_outputs, options: TokenClassificationHead(
        num_labels=num_outputs, dropout=options.get("dropout", 0.1)),
    lambda kind, outputs, batch: tagging_loss(outputs, batch["labels"]),
    _argmax, scores=jax.nn.softmax))
OUTPUTS.register("seq2seq", Output(
    # A token decoder over the run's vocabulary (`num_outputs` = its size).
    lambda kind, num_outputs, options: Seq2SeqHead(TokenDecoder(
        num_outputs, **decoder_options(options, TokenDecoder))),
    lambda kind, outputs, batch: tagging_loss(outputs["logits"], batch["decoder_labels"]),
    lambda kind, outputs: outputs["tokens"],
    inputs=("decoder_input_ids",)))

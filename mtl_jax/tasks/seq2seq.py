"""The text-to-text task kind: source text -> target text, decoded by a per-task decoder.

Targets are tokenized with the run's tokenizer, whose start and end tokens
([CLS] ... [SEP] for BERT-family tokenizers) serve as the decoder's BOS and
EOS. Each target is cut to `max_target_length` decoder positions (EOS kept)
and padded to that one length, so the decoder side of every batch has a
static shape: `decoder_input_ids` ([BOS] + target[:-1], teacher forcing) and
`decoder_labels` (target, IGNORE_LABEL on padding) [b, t]. The loss is the
mean per-token cross-entropy; prediction decodes greedily for t steps;
metrics compare the decoded prediction with the decoded (tokenized, possibly
truncated) reference: exact match, token F1 and corpus BLEU.

Config: `{"kind": "seq2seq", "source": {..., "columns": {"text": ...,
"target": ...}}, "max_target_length": 32, "head": {"num_layers": 2}}`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import flax.linen as nn
import numpy as np

from mtl_jax import heads, metrics
from mtl_jax.tasks import tokenization
from mtl_jax.tasks.kinds import EncodedSplit, register_kind
from mtl_jax.tasks.sources import RawSplit
from mtl_jax.tasks.tokenization import IGNORE_LABEL

DEFAULT_TARGET_LENGTH = 32


@dataclasses.dataclass
class Seq2SeqSplit(EncodedSplit):
  """An encoded seq2seq split: source ids as any split; its labels are target ids.

  Attributes:
    labels: per example the target ids, BOS and EOS included (at most
      `target_length + 1` of them); also `targets`.
    target_length: decoder positions per example (the static length t).
    tokenizer: decodes predictions and references back to text.
    num_targets_truncated: targets cut to `target_length`.
  """

  target_length: int = DEFAULT_TARGET_LENGTH
  tokenizer: Any = None
  num_targets_truncated: int = 0

  @property
  def targets(self) -> list[np.ndarray]:
    return self.labels

  def decoder_arrays(self, indices: Sequence[int], batch_size: int) -> dict[str, np.ndarray]:
    """`decoder_input_ids` and `decoder_labels` [batch_size, t] of some examples."""
    input_ids = np.zeros((batch_size, self.target_length), np.int32)
    labels = np.full((batch_size, self.target_length), IGNORE_LABEL, np.int32)
    for row, index in enumerate(indices):
      target = self.targets[index]
      input_ids[row, :len(target) - 1] = target[:-1]
      labels[row, :len(target) - 1] = target[1:]
    return {"decoder_input_ids": input_ids, "decoder_labels": labels}

  def texts(self, token_ids: Sequence[np.ndarray]) -> list[str]:
    """Text of token sequences, each up to its first EOS (specials dropped)."""
    eos = special_tokens(self.tokenizer)[1]
    out = []
    for ids in token_ids:
      ids = [int(i) for i in ids]
      ids = ids[:ids.index(eos)] if eos in ids else ids
      out.append(self.tokenizer.decode(ids, skip_special_tokens=True))
    return out


def special_tokens(tokenizer) -> tuple[int, int]:
  """(BOS, EOS): the tokens the tokenizer puts around every text."""
  ids = tokenizer.encode("").ids
  if len(ids) != 2:
    raise ValueError("seq2seq tasks need a tokenizer that adds a start and an end token "
                     f"to each text (as BERT's [CLS] ... [SEP]); it encodes '' as {ids}")
  return ids[0], ids[1]


class Seq2Seq:
  """Source text -> target text (see the module docstring)."""

  name = "seq2seq"
  fields = ("text", "target")
  metrics = ("exact_match", "token_f1", "bleu")
  main_metric = "exact_match"
  # Batch arrays the model passes to this kind's head.
  head_inputs = ("decoder_input_ids",)

  def label_vocab(self, train: RawSplit) -> tuple[str, ...]:
    """None: the outputs are tokens of the run's vocabulary (the head's size)."""
    del train
    return ()

  def texts(self, raw: RawSplit) -> list[str]:
    """Sources and targets: both must be in a vocabulary trained from scratch."""
    return list(raw.dataset["text"]) + list(raw.dataset["target"])

  def encode(self, raw: RawSplit, tokenizer, labels: Sequence[str], max_length: int,
             max_target_length: int = DEFAULT_TARGET_LENGTH) -> Seq2SeqSplit:
    del labels
    special_tokens(tokenizer)  # fails early on a tokenizer without BOS/EOS
    sources = tokenization.encode_texts(tokenizer, raw.dataset["text"],
                                        max_length=max_length)
    # t decoder positions hold [BOS] + target[:-1]: t + 1 tokens with EOS.
    targets = tokenization.encode_texts(tokenizer, raw.dataset["target"],
                                        max_length=max_target_length + 1)
    return Seq2SeqSplit(sources.input_ids, sources.token_type_ids, targets.input_ids, raw,
                        num_truncated=sources.num_truncated,
                        target_length=max_target_length, tokenizer=tokenizer,
                        num_targets_truncated=targets.num_truncated)

  def head(self, num_labels: int, options: Mapping[str, Any]) -> nn.Module:
    """A token decoder over the run's vocabulary (`num_labels` = its size)."""
    return heads.Seq2SeqHead(heads.TokenDecoder(
        num_labels, **heads.decoder_options(options, heads.TokenDecoder)))

  def loss(self, outputs, batch):
    return heads.tagging_loss(outputs["logits"], batch["decoder_labels"])

  def predict(self, outputs):
    return outputs["tokens"]

  def evaluate(self, predictions: list[Any], split: Seq2SeqSplit,
               labels: Sequence[str]) -> dict[str, float]:
    predicted = self.decode(predictions, split, labels)
    references = split.texts(split.targets)
    return {"exact_match": metrics.exact_match(predicted, references),
            "token_f1": metrics.token_f1(predicted, references),
            "bleu": metrics.bleu(predicted, references)}

  def raw_inputs(self, inputs: list[Any], labels: Sequence[str]) -> dict[str, list]:
    """Raw fields for unlabelled inputs (source texts; empty targets)."""
    del labels
    return {"text": [str(x) for x in inputs], "target": [""] * len(inputs)}

  def decode(self, predictions: list[Any], split: Seq2SeqSplit,
             labels: Sequence[str]) -> list[str]:
    """Predicted texts."""
    del labels
    return split.texts(predictions)


register_kind(Seq2Seq())

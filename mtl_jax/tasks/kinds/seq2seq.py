"""Seq2seq (text-to-text): source text -> target text, decoded by a per-task decoder.

Targets are tokenized with the run's tokenizer, whose start and end tokens
([CLS] ... [SEP] for BERT-family tokenizers) serve as the decoder's BOS and
EOS. Each target is cut to `max_target_length` decoder positions (EOS kept)
and padded to that one length, so the decoder side of every batch has a
static shape: `decoder_input_ids` ([BOS] + target[:-1], teacher forcing) and
`decoder_labels` (target[1:], IGNORE_LABEL on padding) [b, t]. The loss is
the mean per-token cross-entropy; prediction decodes greedily for t steps;
metrics compare the decoded prediction with the decoded (tokenized, possibly
truncated) reference: exact match, token F1 and corpus BLEU.

Config: `{"kind": "seq2seq", "source": {..., "columns": {"text": ...,
"target": ...}}, "kind_options": {"max_target_length": 32},
"head": {"num_layers": 2}}`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, Sequence

import numpy as np

from mtl_jax import metrics as metrics_lib
from mtl_jax.tasks import tokenization
from mtl_jax.tasks.kinds.base import EncodedSplit, Kind, encode_split, token_columns
from mtl_jax.tasks.sources import RawSplit
from mtl_jax.constants import IGNORE_LABEL

DEFAULT_TARGET_LENGTH = 32


class Seq2SeqSplit(EncodedSplit):
  """An encoded seq2seq split: source ids as any split; its `labels` are target ids.

  Each target holds its BOS and EOS (at most `target_length + 1` ids); the
  `target_truncated` column marks the targets cut to fit.

  Attributes:
    target_length: decoder positions per example (the static length t).
    tokenizer: decodes predictions and references back to text.
  """

  target_length: int
  tokenizer: Any

  @classmethod
  def from_encoded(cls, split: EncodedSplit, target_length: int, tokenizer
                   ) -> "Seq2SeqSplit":
    out = cls.from_dataset(split.dataset, split.raw, split.num_truncated)
    out.target_length, out.tokenizer = target_length, tokenizer
    return out

  @property
  def targets(self) -> Sequence[np.ndarray]:
    return self.labels

  @functools.cached_property
  def num_targets_truncated(self) -> int:
    return int(np.sum(self.column("target_truncated")))

  def decoder_arrays(self, targets: Sequence[np.ndarray], batch_size: int
                     ) -> dict[str, np.ndarray]:
    """`decoder_input_ids` and `decoder_labels` [batch_size, t] of some targets."""
    input_ids = np.zeros((batch_size, self.target_length), np.int32)
    labels = np.full((batch_size, self.target_length), IGNORE_LABEL, np.int32)
    for row, target in enumerate(targets):
      input_ids[row, :len(target) - 1] = target[:-1]
      labels[row, :len(target) - 1] = target[1:]
    return {"decoder_input_ids": input_ids, "decoder_labels": labels}

  def texts(self, token_ids: Sequence[np.ndarray]) -> list[str]:
    """Text of token sequences, each up to its first EOS (special tokens dropped)."""
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


@dataclasses.dataclass(frozen=True)
class Seq2Seq(Kind):
  """Source text -> target text (see the module docstring).

  Attributes:
    max_target_length: decoder positions per target (its static length);
      longer targets are truncated and counted.
  """

  base_name = "seq2seq"
  available_metrics = ("exact_match", "token_f1", "bleu")
  default_metrics = available_metrics
  min_labels = 0  # outputs are tokens of the run's vocabulary, not labels
  fields = ("text", "target")

  max_target_length: int = DEFAULT_TARGET_LENGTH

  def __post_init__(self):
    super().__post_init__()
    if not isinstance(self.max_target_length, int) or self.max_target_length < 1:
      raise ValueError(f"{self.name}: max_target_length must be a positive integer, got "
                       f"{self.max_target_length!r}")

  def label_vocab(self, train: RawSplit) -> tuple[str, ...]:
    del train
    return ()

  def num_outputs(self, labels: Sequence[str], vocab_size: int) -> int:
    del labels
    return vocab_size

  def texts(self, raw: RawSplit) -> list[str]:
    """Sources and targets: both must be in a vocabulary trained from scratch."""
    return raw.column("text") + raw.column("target")

  def encode(self, raw: RawSplit, tokenizer, labels: Sequence[str],
             max_length: int) -> Seq2SeqSplit:
    del labels
    special_tokens(tokenizer)  # fails early on a tokenizer without BOS/EOS
    source_tok = tokenization.truncating(tokenizer, max_length)
    # t decoder positions hold [BOS] + target[:-1]: t + 1 tokens with EOS.
    target_tok = tokenization.truncating(tokenizer, self.max_target_length + 1)

    def encode_batch(batch: Mapping[str, list]) -> dict[str, list]:
      columns = token_columns(tokenization.encode_texts(source_tok, batch["text"],
                                                        max_length=None))
      targets = tokenization.encode_texts(target_tok, batch["target"], max_length=None)
      columns["labels"] = targets.input_ids
      columns["target_truncated"] = targets.truncated
      return columns

    split = encode_split(raw, encode_batch, (repr(self), max_length, source_tok.to_str()))
    return Seq2SeqSplit.from_encoded(split, self.max_target_length, tokenizer)

  def score(self, predictions: list[Any], split: Seq2SeqSplit, labels: Sequence[str],
            indices: np.ndarray) -> dict[str, float]:
    predicted = split.texts([predictions[i] for i in indices])
    references = split.texts([split.targets[i] for i in indices])
    scorers = {"exact_match": metrics_lib.exact_match, "token_f1": metrics_lib.token_f1,
               "bleu": metrics_lib.bleu}
    return {name: scorers[name](predicted, references) for name in self.metric_names}

  def raw_inputs(self, inputs: list[Any], labels: Sequence[str]) -> dict[str, list]:
    """Raw fields for unlabelled inputs (source texts; empty targets)."""
    del labels
    return {"text": [str(x) for x in inputs], "target": [""] * len(inputs)}

  def decode(self, predictions: list[Any], split: Seq2SeqSplit,
             labels: Sequence[str]) -> list[str]:
    """Predicted texts."""
    del labels
    return split.texts(predictions)

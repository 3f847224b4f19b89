"""Tagging: words -> one tag per word (CoNLL NER, POS, chunking)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow.compute as pc

from mtl_jax import metrics as metrics_lib
from mtl_jax.tasks import tokenization
from mtl_jax.tasks.kinds.base import (EncodedSplit, Kind, encode_split, label_ids,
                                      locations, token_columns)
from mtl_jax.tasks.sources import RawSplit


# A chunk tag: a position prefix (IOB1/IOB2/IOBES/BILOU) and a type, e.g. B-PER, I-NP.
_CHUNK_TAG = re.compile(r"^[BIESLU]-\S+$")
SCHEMES = ("auto", "chunks", "tags")


def is_chunk_scheme(labels: Sequence[str]) -> bool:
  """Whether tags are chunks (O and prefixed types), whose spans seqeval scores."""
  return any(t != "O" for t in labels) and all(
      t == "O" or _CHUNK_TAG.match(t) for t in labels)


@dataclasses.dataclass(frozen=True)
class Tagging(Kind):
  """Words -> one tag per word; per-token softmax cross-entropy.

  The first sub-word of each word carries its tag, with words cut off by
  truncation predicted as 'O' so they still count. Chunk tags (NER, chunking:
  'O', 'B-PER', 'I-PER', ...) are scored by entity-level span F1 (seqeval,
  conlleval rules) and token accuracy; tags that are no chunks (POS tags such
  as 'NN', 'VBD') by token accuracy alone, the standard metric there (span F1
  would treat each tag as an entity type, and seqeval warns for each).

  Attributes:
    scheme: 'auto' (chunks where every tag is 'O' or prefixed B-/I-/E-/S-/L-/U-),
      'chunks' or 'tags'.
  """

  base_name = "tagging"
  available_metrics = ("span_f1", "span_precision", "span_recall", "token_accuracy")
  default_metrics = available_metrics
  min_labels = 2
  fields = ("tokens", "tags")

  scheme: str = "auto"

  def __post_init__(self):
    super().__post_init__()
    if self.scheme not in SCHEMES:
      raise ValueError(f"{self.name}: scheme must be one of {SCHEMES}, got {self.scheme!r}")

  def chunks(self, labels: Sequence[str]) -> bool:
    """Whether this task's tags are scored as chunks (spans)."""
    return is_chunk_scheme(labels) if self.scheme == "auto" else self.scheme == "chunks"

  def main_metric_in(self, results) -> str:
    """Span F1 where the task is scored by spans, else token accuracy."""
    spans = any(key == self.main_metric or key.startswith(self.main_metric + "_")
                for key in results)
    return self.main_metric if spans else "token_accuracy"

  def label_vocab(self, train: RawSplit) -> tuple[str, ...]:
    column = train.dataset.with_format("arrow")[:]["tags"]
    tags = pc.unique(pc.list_flatten(column)).to_pylist()
    # "O" first, then entity types grouped (B-X, I-X adjacent).
    return tuple(sorted(tags, key=lambda t: (t != "O", t[2:], t)))

  def texts(self, raw: RawSplit) -> list[str]:
    return [" ".join(words) for words in raw.column("tokens")]

  def encode(self, raw: RawSplit, tokenizer, labels: Sequence[str],
             max_length: int) -> EncodedSplit:
    tok = tokenization.truncating(tokenizer, max_length)
    index = {label: i for i, label in enumerate(labels)}
    where = raw.locator()

    def encode_batch(batch: Mapping[str, list]) -> dict[str, list]:
      encoded = tokenization.encode_words(tok, batch["tokens"], max_length=None)
      columns = token_columns(encoded)
      columns["labels"] = [
          tokenization.align_word_labels(
              word_ids, label_ids(tags, index, [at] * len(tags), what="tag"))
          for word_ids, tags, at in zip(encoded.word_ids, batch["tags"],
                                        locations(where, batch))]
      return columns

    return encode_split(raw, encode_batch,
                        (repr(self), tuple(labels), max_length, tok.to_str()))

  def word_tags(self, predicted_subwords: np.ndarray, word_ids: np.ndarray,
                num_words: int, labels: Sequence[str]) -> list[str]:
    """Word-level tags from sub-word predictions (truncated words -> 'O')."""
    positions = tokenization.first_subword_positions(word_ids)
    tags = [labels[int(predicted_subwords[p])] for p in positions]
    return tags + ["O"] * (num_words - len(tags))

  def score(self, predictions: list[Any], split: EncodedSplit, labels: Sequence[str],
            indices: np.ndarray) -> dict[str, float]:
    gold_all = split.raw.column("tags")
    predicted_all = self.decode(predictions, split, labels)
    gold = [gold_all[i] for i in indices]
    predicted = [predicted_all[i] for i in indices]
    scores = {"token_accuracy": metrics_lib.token_accuracy(predicted, gold)}
    names = self.metric_names
    if self.chunks(labels):
      scores.update(metrics_lib.span_scores(predicted, gold))
    elif self.metrics is not None and set(self.metrics) - {"token_accuracy"}:
      raise ValueError(f"span metrics {sorted(set(self.metrics) - {'token_accuracy'})} need "
                       f"chunk tags (O, B-X, I-X, ...); this task's tags are not "
                       f"({', '.join(labels[:6])}, ...): use metrics=('token_accuracy',) or "
                       "kind_options scheme='chunks'")
    else:  # tags that are no chunks: token accuracy is the task's metric
      names = ("token_accuracy",)
    return {name: scores[name] for name in names}

  def raw_inputs(self, inputs: list[Any], labels: Sequence[str]) -> dict[str, list]:
    """Raw fields for unlabelled inputs (texts split on whitespace, or word lists)."""
    words = [x.split() if isinstance(x, str) else [str(w) for w in x] for x in inputs]
    return {"tokens": words, "tags": [[labels[0]] * len(w) for w in words]}

  def decode(self, predictions: list[Any], split: EncodedSplit,
             labels: Sequence[str]) -> list[list[str]]:
    """Predicted tags, one per word."""
    return [self.word_tags(p, w, len(t), labels)
            for p, w, t in zip(predictions, split.word_ids, split.raw.column("tags"))]

  def decode_scores(self, scores: list[Any], split: EncodedSplit, labels: Sequence[str]
                    ) -> list[list[dict[str, float]]]:
    """Per word, {tag: probability} of its first sub-word (truncated words: none)."""
    out = []
    for rows, word_ids in zip(scores, split.word_ids):
      out.append([{label: float(p) for label, p in zip(labels, rows[position])}
                  for position in tokenization.first_subword_positions(word_ids)])
    return out

  def show(self, prediction: list[str]) -> str:
    return " ".join(prediction)

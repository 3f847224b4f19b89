"""Task kinds: what each shape of NLP task reads, encodes, predicts and scores.

A kind ties the pieces of one task shape together: the raw fields it reads
from a source, how examples become token ids and label ids, its head and
loss, its device-side prediction and its host-side metrics. Tasks name their
kind; new kinds register in `KINDS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax.numpy as jnp
import numpy as np
import flax.linen as nn

from mtl_jax import heads, metrics
from mtl_jax.tasks import tokenization
from mtl_jax.tasks.sources import LINE, DataError, RawSplit


@dataclasses.dataclass
class EncodedSplit:
  """One split of a task, tokenized: ragged arrays, one entry per example.

  Attributes:
    input_ids, token_type_ids: int32 arrays per example.
    labels: per example an int label (classification) or an int32 array of
      sub-word labels (tagging, IGNORE_LABEL where unlabelled).
    raw: the raw split (texts, gold labels, file lines), for evaluation and
      error messages.
    word_ids: tagging only; word index per sub-word (-1 for special tokens).
    num_truncated: examples cut to `max_length`.
  """

  input_ids: list[np.ndarray]
  token_type_ids: list[np.ndarray]
  labels: list[Any]
  raw: RawSplit
  word_ids: list[np.ndarray] | None = None
  num_truncated: int = 0

  def __len__(self) -> int:
    return len(self.input_ids)

  @property
  def lengths(self) -> np.ndarray:
    return np.fromiter((len(x) for x in self.input_ids), np.int64, len(self))


def _label_ids(values: Sequence[Any], label_index: Mapping[str, int], raw: RawSplit,
               lines: Sequence[int], what: str = "label") -> list[int]:
  ids = []
  for value, line in zip(values, lines):
    key = str(value)
    if key not in label_index:
      raise DataError(f"{raw.path}: line {line}: unknown {what} {key!r}; the task's "
                      f"labels are {sorted(label_index)}")
    ids.append(label_index[key])
  return ids


class Classification:
  """One text -> one of N labels (AG News, SST-2). Metrics: accuracy, macro-F1."""

  name = "classification"
  fields = ("text", "label")
  metrics = ("accuracy", "macro_f1")
  main_metric = "accuracy"

  def label_vocab(self, train: RawSplit) -> tuple[str, ...]:
    return tuple(sorted({str(v) for v in train.dataset["label"]}, key=_natural))

  def texts(self, raw: RawSplit) -> list[str]:
    return raw.dataset["text"]

  def encode(self, raw: RawSplit, tokenizer, labels: Sequence[str],
             max_length: int) -> EncodedSplit:
    encoded = tokenization.encode_texts(tokenizer, raw.dataset["text"],
                                        max_length=max_length)
    index = {label: i for i, label in enumerate(labels)}
    label_ids = _label_ids(raw.dataset["label"], index, raw, raw.dataset[LINE])
    return EncodedSplit(encoded.input_ids, encoded.token_type_ids, label_ids, raw,
                        num_truncated=encoded.num_truncated)

  def head(self, num_labels: int, options: Mapping[str, Any]) -> nn.Module:
    if options.get("type") == "decoder":  # learned queries over the encoder output
      return heads.DecoderClassificationHead(num_labels, **heads.decoder_options(
          options, heads.DecoderClassificationHead))
    return heads.SequenceClassificationHead(
        num_outputs=num_labels, pooling=options.get("pooling", "cls"),
        dropout=options.get("dropout", 0.1))

  def loss(self, outputs, batch):
    return heads.classification_loss(outputs, batch["labels"],
                                     batch["attention_mask"][:, 0])

  def predict(self, outputs):
    return jnp.argmax(outputs, axis=-1)

  def evaluate(self, predictions: list[Any], split: EncodedSplit,
               labels: Sequence[str]) -> dict[str, float]:
    del labels
    predicted, gold = np.asarray(predictions), np.asarray(split.labels)
    return {"accuracy": metrics.accuracy(predicted, gold),
            "macro_f1": metrics.macro_f1(predicted, gold)}

  def raw_inputs(self, inputs: list[Any], labels: Sequence[str]) -> dict[str, list]:
    """Raw fields for unlabelled inputs (texts), with placeholder labels."""
    return {"text": [str(x) for x in inputs], "label": [labels[0]] * len(inputs)}

  def decode(self, predictions: list[Any], split: EncodedSplit,
             labels: Sequence[str]) -> list[str]:
    """Predicted label names."""
    del split
    return [labels[int(p)] for p in predictions]


class Tagging:
  """Words -> one tag per word (CoNLL NER, POS, chunking).

  The first sub-word of each word carries its tag; the metric is entity-level
  span F1 (seqeval, conlleval rules) over words, with words cut off by
  truncation predicted as 'O' so they still count.
  """

  name = "tagging"
  fields = ("tokens", "tags")
  metrics = ("span_f1", "span_precision", "span_recall", "token_accuracy")
  main_metric = "span_f1"

  def label_vocab(self, train: RawSplit) -> tuple[str, ...]:
    tags = {t for sentence in train.dataset["tags"] for t in sentence}
    # "O" first, then entity types grouped (B-X, I-X adjacent).
    return tuple(sorted(tags, key=lambda t: (t != "O", t[2:], t)))

  def texts(self, raw: RawSplit) -> list[str]:
    return [" ".join(words) for words in raw.dataset["tokens"]]

  def encode(self, raw: RawSplit, tokenizer, labels: Sequence[str],
             max_length: int) -> EncodedSplit:
    encoded = tokenization.encode_words(tokenizer, raw.dataset["tokens"],
                                        max_length=max_length)
    index = {label: i for i, label in enumerate(labels)}
    sub_labels = []
    for word_ids, tags, line in zip(encoded.word_ids, raw.dataset["tags"],
                                    raw.dataset[LINE]):
      tag_ids = _label_ids(tags, index, raw, [line] * len(tags), what="tag")
      sub_labels.append(tokenization.align_word_labels(word_ids, tag_ids))
    return EncodedSplit(encoded.input_ids, encoded.token_type_ids, sub_labels, raw,
                        word_ids=encoded.word_ids, num_truncated=encoded.num_truncated)

  def head(self, num_labels: int, options: Mapping[str, Any]) -> nn.Module:
    return heads.TokenClassificationHead(num_labels=num_labels,
                                         dropout=options.get("dropout", 0.1))

  def loss(self, outputs, batch):
    return heads.tagging_loss(outputs, batch["labels"])

  def predict(self, outputs):
    return jnp.argmax(outputs, axis=-1)

  def word_tags(self, predicted_subwords: np.ndarray, word_ids: np.ndarray,
                num_words: int, labels: Sequence[str]) -> list[str]:
    """Word-level tags from sub-word predictions (truncated words -> 'O')."""
    positions = tokenization.first_subword_positions(word_ids)
    tags = [labels[int(predicted_subwords[p])] for p in positions]
    return tags + ["O"] * (num_words - len(tags))

  def evaluate(self, predictions: list[Any], split: EncodedSplit,
               labels: Sequence[str]) -> dict[str, float]:
    gold = split.raw.dataset["tags"]
    predicted = self.decode(predictions, split, labels)
    scores = metrics.span_scores(predicted, gold)
    scores["token_accuracy"] = metrics.token_accuracy(predicted, gold)
    return scores

  def raw_inputs(self, inputs: list[Any], labels: Sequence[str]) -> dict[str, list]:
    """Raw fields for unlabelled inputs (texts split on whitespace, or word lists)."""
    words = [x.split() if isinstance(x, str) else [str(w) for w in x] for x in inputs]
    return {"tokens": words, "tags": [[labels[0]] * len(w) for w in words]}

  def decode(self, predictions: list[Any], split: EncodedSplit,
             labels: Sequence[str]) -> list[list[str]]:
    """Predicted tags, one per word."""
    return [self.word_tags(p, w, len(t), labels)
            for p, w, t in zip(predictions, split.word_ids, split.raw.dataset["tags"])]


def _natural(label: str):
  """Sorts '2' before '10' when labels are numbers, else alphabetically."""
  try:
    return (0, float(label), label)
  except ValueError:
    return (1, 0.0, label)


KINDS = {kind.name: kind for kind in (Classification(), Tagging())}


def register_kind(kind) -> None:
  """Adds a kind object (its `name`, fields, encode, head, loss, ...) to `KINDS`."""
  if kind.name in KINDS:
    raise ValueError(f"task kind {kind.name!r} is already registered")
  KINDS[kind.name] = kind


def get_kind(name: str):
  if name not in KINDS:
    raise ValueError(f"unknown task kind {name!r}; known kinds: {', '.join(KINDS)}")
  return KINDS[name]

"""Multi-label classification: one text (or pair) -> any subset of N labels.

Each example's labels come as a list (JSONL, parquet, hub and TFDS lists) or
as one text cell joined by `separator` ('sports,politics'). The head has one
sigmoid output per label (binary cross-entropy); a label is predicted when
its probability exceeds `threshold`. Metrics: micro- and macro-F1 and
exact-match (subset) accuracy.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtl_jax import metrics as metrics_lib
from mtl_jax.tasks.kinds.base import EncodedSplit, label_ids, natural
from mtl_jax.tasks.kinds.sequence import SequenceKind
from mtl_jax.tasks.sources import RawSplit


@dataclasses.dataclass(frozen=True)
class MultiLabel(SequenceKind):
  """One text (or pair) -> a set of labels; sigmoid cross-entropy per label.

  Attributes:
    separator: splits a text cell into labels (spaces around labels are
      stripped, empty pieces ignored).
    threshold: the probability above which a label is predicted.
  """

  base_name = "multilabel"
  available_metrics = ("micro_f1", "macro_f1", "subset_accuracy")
  default_metrics = ("micro_f1", "macro_f1", "subset_accuracy")

  separator: str = ","
  threshold: float = 0.5

  def _label_set(self, value: Any) -> list[str]:
    pieces = value.split(self.separator) if isinstance(value, str) else value
    return [str(p).strip() for p in pieces if str(p).strip()]

  def label_vocab(self, train: RawSplit) -> tuple[str, ...]:
    column = train.dataset.with_format("arrow")[:]["label"]
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
      values = pc.unique(pc.list_flatten(column)).to_pylist()
      names = {str(v).strip() for v in values if v is not None and str(v).strip()}
    else:
      names = {n for v in pc.unique(column).to_pylist() for n in self._label_set(v)}
    return tuple(sorted(names, key=natural))

  def label_column(self, values: Sequence[Any], labels: Sequence[str],
                   where: Sequence[str]) -> list[np.ndarray]:
    index = {label: i for i, label in enumerate(labels)}
    rows = []
    for value, at in zip(values, where):
      names = self._label_set(value)
      multi_hot = np.zeros(len(labels), np.int8)
      multi_hot[label_ids(names, index, [at] * len(names))] = 1
      rows.append(multi_hot)
    return rows

  def placeholder(self, labels: Sequence[str]) -> list[str]:
    return [labels[0]]

  def score(self, predictions: list[Any], split: EncodedSplit, labels: Sequence[str],
            indices: np.ndarray) -> dict[str, float]:
    predicted = np.stack([np.asarray(predictions[i]) for i in indices])
    gold = np.stack([np.asarray(g) for g in np.asarray(split.labels)[indices]])
    scores = metrics_lib.multilabel_scores(predicted, gold)
    return {name: scores[name] for name in self.metric_names}

  def decode(self, predictions: list[Any], split: EncodedSplit,
             labels: Sequence[str]) -> list[list[str]]:
    """The predicted label names of each example."""
    del split
    return [[labels[i] for i in np.flatnonzero(p)] for p in predictions]

  def show(self, prediction: list[str]) -> str:
    return self.separator.join(prediction)

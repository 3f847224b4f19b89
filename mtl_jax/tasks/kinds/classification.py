"""Classification: one text (or text pair) -> one of N labels.

AG News and SST-2 (`classification`); MRPC, RTE, MNLI (`pair_classification`).
Metrics: accuracy, macro-F1, the positive class's F1 (`f1`, GLUE's MRPC and
QQP) and the Matthews correlation (`matthews_corr`, GLUE's CoLA).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from mtl_jax import metrics as metrics_lib
from mtl_jax.tasks.kinds.base import EncodedSplit, label_ids, natural
from mtl_jax.tasks.kinds.sequence import SequenceKind
from mtl_jax.tasks.sources import RawSplit


@dataclasses.dataclass(frozen=True)
class Classification(SequenceKind):
  """One text (or pair) -> one of N labels; softmax cross-entropy.

  Attributes:
    positive_label: the positive class of the `f1` metric (default: the
      last label of a two-label task, '1' for '0'/'1').
  """

  base_name = "classification"
  available_metrics = ("accuracy", "macro_f1", "f1", "matthews_corr")
  default_metrics = ("accuracy", "macro_f1")
  min_labels = 2

  positive_label: str | None = None

  def label_vocab(self, train: RawSplit) -> tuple[str, ...]:
    return tuple(sorted({str(v) for v in train.dataset.unique("label")}, key=natural))

  def label_column(self, values: Sequence[Any], labels: Sequence[str],
                   where: Sequence[str]) -> list[int]:
    return label_ids(values, {label: i for i, label in enumerate(labels)}, where)

  def placeholder(self, labels: Sequence[str]) -> str:
    return labels[0]

  def score(self, predictions: list[Any], split: EncodedSplit, labels: Sequence[str],
            indices: np.ndarray) -> dict[str, float]:
    predicted = np.asarray(predictions)[indices].astype(np.int64)
    gold = np.asarray(split.labels)[indices].astype(np.int64)
    scorers = {
        "accuracy": lambda: metrics_lib.accuracy(predicted, gold),
        "macro_f1": lambda: metrics_lib.macro_f1(predicted, gold),
        "f1": lambda: metrics_lib.binary_f1(predicted, gold, self._positive(labels)),
        "matthews_corr": lambda: metrics_lib.matthews_corr(predicted, gold),
    }
    return {name: scorers[name]() for name in self.metric_names}

  def _positive(self, labels: Sequence[str]) -> int:
    if self.positive_label is not None:
      if self.positive_label not in labels:
        raise ValueError(f"positive_label {self.positive_label!r} is not one of the "
                         f"task's labels {list(labels)}")
      return list(labels).index(self.positive_label)
    if len(labels) != 2:
      raise ValueError(f"metric 'f1' of a {len(labels)}-label task needs "
                       "kind_options.positive_label")
    return 1

  def decode(self, predictions: list[Any], split: EncodedSplit,
             labels: Sequence[str]) -> list[str]:
    """Predicted label names."""
    del split
    return [labels[int(p)] for p in predictions]

"""Regression: one text (or text pair) -> a real-valued score (STS-B similarity).

The head is the classification head with one output, trained with the mean
squared error. A task may declare the targets' range (`range=(0, 5)`):
targets outside it, or not numbers, are errors naming the row. With
`normalize=True` the model learns the targets scaled to [0, 1] by that
range; predictions and metrics are always on the original scale.
Metrics: Pearson and Spearman correlation (GLUE's STS-B), MSE.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from mtl_jax import metrics as metrics_lib
from mtl_jax.tasks.kinds.base import EncodedSplit
from mtl_jax.tasks.kinds.sequence import SequenceKind
from mtl_jax.tasks.sources import DataError, RawSplit

# The "label vocabulary" of a regression task: its one output.
OUTPUT_NAME = "score"


@dataclasses.dataclass(frozen=True)
class Regression(SequenceKind):
  """One text (or pair) -> one score; mean squared error.

  Attributes:
    range: (low, high), the targets' declared range (inclusive), or None.
    normalize: learn (target - low) / (high - low) instead of the target
      (needs `range`); predictions are mapped back.
  """

  base_name = "regression"
  available_metrics = ("pearson", "spearman", "mse")
  default_metrics = ("pearson", "spearman")

  range: tuple[float, float] | None = None
  normalize: bool = False

  def __post_init__(self):
    super().__post_init__()
    if self.range is not None:
      low, high = (float(x) for x in self.range)
      if not low < high:
        raise ValueError(f"{self.name}: range must be (low, high) with low < high, "
                         f"got {self.range}")
      object.__setattr__(self, "range", (low, high))
    if self.normalize and self.range is None:
      raise ValueError(f"{self.name}: normalize=True needs range=(low, high)")

  def label_vocab(self, train: RawSplit) -> tuple[str, ...]:
    del train
    return (OUTPUT_NAME,)

  def label_column(self, values: Sequence[Any], labels: Sequence[str],
                   where: Sequence[str]) -> list[float]:
    del labels
    targets = []
    for value, at in zip(values, where):
      try:
        target = float(value)
      except (TypeError, ValueError):
        raise DataError(f"{at}: regression target {value!r} is not a number") from None
      if not math.isfinite(target):
        raise DataError(f"{at}: regression target {value!r} is not finite")
      if self.range is not None and not self.range[0] <= target <= self.range[1]:
        raise DataError(f"{at}: regression target {target:g} is outside the declared "
                        f"range [{self.range[0]:g}, {self.range[1]:g}]")
      targets.append(self._to_model(target))
    return targets

  def placeholder(self, labels: Sequence[str]) -> float:
    del labels
    return self.range[0] if self.range else 0.0

  def _to_model(self, target):
    if not self.normalize:
      return target
    low, high = self.range
    return (target - low) / (high - low)

  def _from_model(self, output):
    if not self.normalize:
      return output
    low, high = self.range
    return low + output * (high - low)

  def score(self, predictions: list[Any], split: EncodedSplit, labels: Sequence[str],
            indices: np.ndarray) -> dict[str, float]:
    predicted = self._from_model(np.asarray(predictions, np.float64)[indices])
    gold = self._from_model(np.asarray(split.labels, np.float64)[indices])
    scorers = {"pearson": metrics_lib.pearson, "spearman": metrics_lib.spearman,
               "mse": metrics_lib.mse}
    return {name: scorers[name](predicted, gold) for name in self.metric_names}

  def decode(self, predictions: list[Any], split: EncodedSplit,
             labels: Sequence[str]) -> list[float]:
    """Predicted scores, on the targets' scale."""
    del split, labels
    return [float(self._from_model(float(p))) for p in predictions]

  def show(self, prediction: float) -> str:
    return f"{prediction:.4f}"

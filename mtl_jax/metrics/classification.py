"""Metrics of classification tasks (scikit-learn's implementations)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as sk


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
  return float(sk.accuracy_score(labels, predictions))


def macro_f1(predictions: np.ndarray, labels: np.ndarray) -> float:
  """F1 averaged over the classes present in gold or predictions."""
  return float(sk.f1_score(labels, predictions, average="macro", zero_division=0))

"""Metrics of classification tasks (scikit-learn's implementations)."""

from __future__ import annotations

import numpy as np


def _sk():
  # scikit-learn (and SciPy under it) take about a second to import: every
  # `mtl-jax` process would pay it at start-up; only scoring needs it.
  from sklearn import metrics  # pylint: disable=import-outside-toplevel
  return metrics


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
  return float(_sk().accuracy_score(labels, predictions))


def macro_f1(predictions: np.ndarray, labels: np.ndarray) -> float:
  """F1 averaged over the classes present in gold or predictions."""
  return float(_sk().f1_score(labels, predictions, average="macro", zero_division=0))


def binary_f1(predictions: np.ndarray, labels: np.ndarray, positive: int) -> float:
  """F1 of the positive class (GLUE's MRPC and QQP F1)."""
  return float(_sk().f1_score(labels, predictions, pos_label=positive, average="binary",
                           zero_division=0))


def matthews_corr(predictions: np.ndarray, labels: np.ndarray) -> float:
  """Matthews correlation coefficient (GLUE's CoLA metric); 0 when undefined."""
  return float(_sk().matthews_corrcoef(labels, predictions))


def multilabel_scores(predictions_nc: np.ndarray, labels_nc: np.ndarray
                      ) -> dict[str, float]:
  """Micro- and macro-averaged F1 and exact-match accuracy of multi-hot rows.

  Args:
    predictions_nc: [n, classes] 0/1 predicted label sets.
    labels_nc: [n, classes] 0/1 gold label sets.

  Returns:
    {'micro_f1', 'macro_f1', 'subset_accuracy'}.
  """
  return {
      "micro_f1": float(_sk().f1_score(labels_nc, predictions_nc, average="micro",
                                    zero_division=0)),
      "macro_f1": float(_sk().f1_score(labels_nc, predictions_nc, average="macro",
                                    zero_division=0)),
      "subset_accuracy": float(_sk().accuracy_score(labels_nc, predictions_nc)),
  }

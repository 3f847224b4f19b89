"""Metrics of regression tasks (SciPy's correlations, scikit-learn's MSE)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from sklearn import metrics as sk


def _correlation(fn, predictions: np.ndarray, targets: np.ndarray) -> float:
  # A constant prediction (an untrained head, say) has no correlation: SciPy
  # warns and returns NaN; report 0, as scikit-learn does for the MCC.
  if len(predictions) < 2:
    return 0.0
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", stats.ConstantInputWarning)
    value = fn(np.asarray(predictions, np.float64), np.asarray(targets, np.float64))[0]
  return 0.0 if np.isnan(value) else float(value)


def pearson(predictions: np.ndarray, targets: np.ndarray) -> float:
  """Pearson correlation (GLUE's STS-B metric); 0 when a side is constant."""
  return _correlation(stats.pearsonr, predictions, targets)


def spearman(predictions: np.ndarray, targets: np.ndarray) -> float:
  """Spearman rank correlation (GLUE's STS-B metric); 0 when a side is constant."""
  return _correlation(stats.spearmanr, predictions, targets)


def mse(predictions: np.ndarray, targets: np.ndarray) -> float:
  return float(sk.mean_squared_error(targets, predictions))

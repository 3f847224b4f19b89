"""Metrics of regression tasks (SciPy's correlations, scikit-learn's MSE)."""

from __future__ import annotations

import warnings

import numpy as np


def _stats():
  # SciPy takes most of a second to import: every `mtl-jax` process would pay
  # it at start-up; only scoring needs it.
  from scipy import stats  # pylint: disable=import-outside-toplevel
  return stats


def _correlation(fn, predictions: np.ndarray, targets: np.ndarray) -> float:
  predictions = np.asarray(predictions, np.float64)
  targets = np.asarray(targets, np.float64)
  if len(predictions) != len(targets):
    raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
  if len(predictions) < 2:
    raise ValueError(f"a correlation needs at least 2 examples, got {len(predictions)}")
  # A diverged head (non-finite outputs) or a constant one (an untrained head)
  # has no correlation: nan, as SciPy gives for constant inputs, never a 0 that
  # reads as "uncorrelated". The evaluation names the task and says why.
  if not (np.all(np.isfinite(predictions)) and np.all(np.isfinite(targets))):
    return float("nan")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", _stats().ConstantInputWarning)
    return float(fn(predictions, targets)[0])


def pearson(predictions: np.ndarray, targets: np.ndarray) -> float:
  """Pearson correlation (GLUE's STS-B metric); nan when a side is constant or not finite."""
  return _correlation(_stats().pearsonr, predictions, targets)


def spearman(predictions: np.ndarray, targets: np.ndarray) -> float:
  """Spearman rank correlation (GLUE's STS-B metric); nan as `pearson`."""
  return _correlation(_stats().spearmanr, predictions, targets)


def mse(predictions: np.ndarray, targets: np.ndarray) -> float:
  """Mean squared error; nan for non-finite predictions (scikit-learn would raise)."""
  predictions = np.asarray(predictions, np.float64)
  if not len(predictions):
    raise ValueError("no predictions to score")
  if not np.all(np.isfinite(predictions)):
    return float("nan")
  # Imported here, not at start-up, for the reason `_stats` gives.
  from sklearn import metrics  # pylint: disable=import-outside-toplevel
  return float(metrics.mean_squared_error(targets, predictions))

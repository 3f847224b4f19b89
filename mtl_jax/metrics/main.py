"""A task's main metric in a run's results, its direction, and a run's main score.

The main score ranks runs for model selection: the held-out choice of
`mtl-jax compare --learning-rates` and, as `checkpoint.best_metric =
'main_score'`, the best checkpoint and early stopping of a multi-task run.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

# Metrics where lower is better; every other metric of the task kinds
# (accuracy, F1, correlations, ...) is higher-is-better.
LOWER_IS_BETTER = frozenset({"mse", "mae", "rmse", "loss", "error", "perplexity"})
# `checkpoint.best_metric` naming the main score rather than one task's metric.
MAIN_SCORE = "main_score"


def lower_is_better(metric: str) -> bool:
  """Whether a smaller value of `metric` is better (`mse`, also `mse_matched`)."""
  return metric in LOWER_IS_BETTER or metric.split("_")[0] in LOWER_IS_BETTER


def main_metric_key(results: Mapping[str, float], metric: str, task: str) -> str:
  """The result key of `metric` (for a split with parts, its first part's: `accuracy_matched`).

  Raises:
    KeyError: the task reported no such metric.
  """
  if metric in results:
    return metric
  parts = [key for key in results if key.startswith(metric + "_")]
  if not parts:
    raise KeyError(f"task {task}: no {metric!r} in its metrics {sorted(results)}")
  return parts[0]


def main_score(results: Mapping[str, Mapping[str, float]], tasks: Sequence[Any]) -> float:
  """The mean of the tasks' main metrics, each lower-is-better one negated (GLUE's rule).

  Args:
    results: a run's metrics, {task: {metric: value}}.
    tasks: the tasks to score (each with `.name` and `.spec.main_metric_in`).

  Returns:
    The score (higher is better); NaN where a main metric is NaN.
  """
  values = []
  for task in tasks:
    task_results = results[task.name]
    key = main_metric_key(task_results, task.spec.main_metric_in(task_results), task.name)
    value = float(task_results[key])
    values.append(-value if lower_is_better(key) else value)
  return math.fsum(values) / len(values)

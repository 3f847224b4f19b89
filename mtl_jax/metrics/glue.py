"""The GLUE score: each task's metrics averaged, then the tasks averaged.

As the GLUE benchmark computes it (Wang et al., 2019): a task with two
metrics (MRPC and QQP: F1 and accuracy; STS-B: Pearson and Spearman; MNLI:
matched and mismatched accuracy) scores their unweighted mean, and the GLUE
score is the mean over tasks. Scores here are fractions (0.85), not the
leaderboard's percentages.
"""

from __future__ import annotations

from typing import Mapping

# Each GLUE task's metrics, as our kinds name them.
GLUE_METRICS = {
    "cola": ("matthews_corr",),
    "sst2": ("accuracy",),
    "mrpc": ("f1", "accuracy"),
    "stsb": ("pearson", "spearman"),
    "qqp": ("f1", "accuracy"),
    "mnli": ("accuracy_matched", "accuracy_mismatched"),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
}
# Run task names of the catalogue's GLUE tasks: 'glue_rte' -> 'rte'.
PREFIX = "glue_"


def glue_task_score(glue_task: str, metrics: Mapping[str, float]) -> float:
  """One GLUE task's score: the mean of its metrics.

  Raises:
    KeyError: an unknown GLUE task, or a metric missing from `metrics`.
  """
  if glue_task not in GLUE_METRICS:
    raise KeyError(f"unknown GLUE task {glue_task!r}; GLUE tasks: {sorted(GLUE_METRICS)}")
  missing = [m for m in GLUE_METRICS[glue_task] if m not in metrics]
  if missing:
    raise KeyError(f"GLUE task {glue_task!r} needs metric(s) {missing}; got "
                   f"{sorted(metrics)}")
  names = GLUE_METRICS[glue_task]
  return sum(float(metrics[m]) for m in names) / len(names)


def glue_average(results: Mapping[str, Mapping[str, float]],
                 tasks: Mapping[str, str] | None = None) -> dict | None:
  """The GLUE score of a run's results.

  Args:
    results: {task name: {metric: value}}, as `train` and `eval` return.
    tasks: run task name -> GLUE task ('rte', ...); default: the catalogue's
      names ('glue_rte' -> 'rte').

  Returns:
    None when no task is a GLUE task; else {'score': the mean over the GLUE
    tasks present, 'tasks': {glue task: score}, 'complete': whether all nine
    are present}.
  """
  if tasks is None:
    tasks = {name: name[len(PREFIX):] for name in results
             if name.startswith(PREFIX) and name[len(PREFIX):] in GLUE_METRICS}
  scores = {glue: glue_task_score(glue, results[name]) for name, glue in tasks.items()
            if name in results}
  if not scores:
    return None
  return {"score": sum(scores.values()) / len(scores), "tasks": scores,
          "complete": set(scores) == set(GLUE_METRICS)}

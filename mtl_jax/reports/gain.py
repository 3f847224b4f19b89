"""Relative gain of multi-task over single-task, and its average Δm.

Δm (Maninis et al. 2019, https://arxiv.org/abs/1904.08918; Vandenhende et
al. 2021, https://arxiv.org/abs/2004.13379) is the mean over the T tasks of
each task's relative gain on its main metric:

    Δm = (1/T) Σ_t (-1)^{l_t} (M_mt,t − M_st,t) / |M_st,t|

with l_t = 1 where lower is better (an error such as MSE), so a positive
Δm always means multi-task helps. (The papers divide by M_st,t, which is
positive for their metrics; |M_st,t| keeps the sign meaningful for a
negative correlation.)
"""

from __future__ import annotations

import math
from typing import Mapping

from mtl_jax.metrics.main import lower_is_better

def relative_gain(multi_task: float, single_task: float, lower: bool) -> float:
  """(-1)^l (M_mt − M_st) / M_st: positive when multi-task does better.

  Raises:
    ValueError: the single-task value is 0 (no relative gain is defined).
  """
  if single_task == 0:
    raise ValueError("the single-task value is 0: no relative gain")
  gain = (multi_task - single_task) / abs(single_task)
  return -gain if lower else gain


def delta_m(multi_task: Mapping[str, float], single_task: Mapping[str, float],
            metrics: Mapping[str, str]) -> float:
  """The average relative gain Δm over tasks (see the module docstring).

  Args:
    multi_task: task -> its main metric's value in the multi-task run.
    single_task: task -> the same metric in its single-task run.
    metrics: task -> the metric's name (its direction comes from it).

  Returns:
    Δm as a fraction (0.05 = +5%); NaN where some value is NaN.

  Raises:
    KeyError: a task missing from one of the mappings (named).
  """
  gains = []
  for task, metric in metrics.items():
    for side, values in (("multi-task", multi_task), ("single-task", single_task)):
      if task not in values:
        raise KeyError(f"task {task!r} has no {side} value")
    gains.append(relative_gain(multi_task[task], single_task[task], lower_is_better(metric)))
  if not gains:
    raise ValueError("no tasks to average")
  return math.fsum(gains) / len(gains)

"""Plots of a run's balancing diagnostics, from its `train_log.jsonl`.

`plot_balancing(log, png)` draws, against the step: each task's loss, its
weight (or aggregation coefficient), its gradient norm, and the cosine
similarity of every pair of task gradients (below 0: the tasks conflict);
the last two where the run logged diagnostics (`balancing.diagnostics`).
`plot_panels` and `plot_matrices` draw the reports' curves (loss per task,
multi-task vs single-task, averaged over seeds with `mean_curve`) and
heat maps (mean gradient cosines, `mean_cosines`; relatedness matrices).
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402


def read_train_log(path: str | os.PathLike) -> list[dict[str, Any]]:
  """The step records of a `train_log.jsonl` (evaluation lines left out).

  Raises:
    FileNotFoundError: no such file.
    ValueError: a line that is not JSON (named by number).
  """
  records = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as error:
        raise ValueError(f"{path}: line {number}: not JSON ({error.msg})") from None
      if "losses" in record:
        records.append(record)
  return records


def plot_balancing(log_path: str | os.PathLike, png_path: str | os.PathLike) -> str:
  """Writes the balancing plot of a run (see module docstring).

  Args:
    log_path: the run's `train_log.jsonl`.
    png_path: where the PNG goes.

  Returns:
    `png_path`.

  Raises:
    ValueError: the log has no step records.
  """
  records = read_train_log(log_path)
  if not records:
    raise ValueError(f"{log_path}: no training steps logged")
  steps = [r["step"] for r in records]
  names = list(records[0]["losses"])
  with_diagnostics = [r for r in records if "grad_norms" in r]
  panels = [("loss", "losses"), ("weight", "weights")]
  if with_diagnostics:
    panels.append(("gradient norm", "grad_norms"))
  figure, axes = plt.subplots(len(panels) + bool(with_diagnostics), 1, sharex=True,
                              figsize=(7, 2.4 * (len(panels) + bool(with_diagnostics))),
                              squeeze=False)
  axes = axes[:, 0]
  for axis, (label, key) in zip(axes, panels):
    rows = records if key != "grad_norms" else with_diagnostics
    for name in names:
      axis.plot([r["step"] for r in rows], [r[key][name] for r in rows], label=name)
    axis.set_ylabel(label)
  if with_diagnostics:
    axis = axes[-1]
    diag_steps = [r["step"] for r in with_diagnostics]
    for i in range(len(names)):
      for j in range(i + 1, len(names)):
        axis.plot(diag_steps, [r["grad_cosines"][i][j] for r in with_diagnostics],
                  label=f"{names[i]} / {names[j]}")
    axis.axhline(0.0, color="grey", linewidth=0.8)
    axis.set_ylabel("gradient cosine")
    axis.legend(fontsize="small", loc="best")
  axes[0].legend(fontsize="small", loc="best")
  axes[-1].set_xlabel("step")
  axes[0].set_xlim(min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1)
  figure.tight_layout()
  figure.savefig(png_path, dpi=100)
  plt.close(figure)
  return str(png_path)


Curve = tuple[list[int], list[float]]


def mean_curve(logs: Sequence[Sequence[dict[str, Any]]], key: str, task: str) -> Curve:
  """A per-task value (`key` = 'losses', 'weights', 'grad_norms') against the step,
  averaged over the runs (seeds) that have `task`, at the steps they all logged.

  Non-finite steps (logged as None) are left out of the mean.
  """
  logs = [records for records in logs if records and task in records[0].get(key, {})]
  by_step: dict[int, list[float]] = {}
  for records in logs:
    for record in records:
      value = record.get(key, {}).get(task)
      if value is not None:
        by_step.setdefault(record["step"], []).append(value)
  steps = sorted(s for s, values in by_step.items() if len(values) == len(logs))
  return steps, [float(np.mean(by_step[s])) for s in steps]


def mean_cosines(logs: Sequence[Sequence[dict[str, Any]]]) -> np.ndarray | None:
  """[k, k] task-gradient cosines averaged over the logged steps of every run;
  None where no run logged diagnostics (`balancing.diagnostics`)."""
  matrices = [r["grad_cosines"] for records in logs for r in records if "grad_cosines" in r]
  return np.mean(np.asarray(matrices, float), axis=0) if matrices else None


def plot_panels(panels: Mapping[str, Mapping[str, Curve]], png_path: str | os.PathLike,
                ylabel: str, columns: int = 2) -> str:
  """One panel per entry (e.g. per task), one line per curve (e.g. MT vs ST).

  Args:
    panels: title -> {line label -> (steps, values)}.
    png_path: where the PNG goes.
    ylabel: the y axis' label.
    columns: panels per row.

  Returns:
    `png_path`.
  """
  columns = min(columns, len(panels))
  rows = -(-len(panels) // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3 * rows), squeeze=False)
  for axis, (title, curves) in zip(axes.flat, panels.items()):
    for label, (steps, values) in curves.items():
      axis.plot(steps, values, label=label)
    axis.set_title(title, fontsize=10)
    axis.set_xlabel("step")
    axis.set_ylabel(ylabel)
    axis.legend(fontsize="small", loc="best")
  for axis in axes.flat[len(panels):]:
    axis.set_visible(False)
  figure.tight_layout()
  figure.savefig(png_path, dpi=100)
  plt.close(figure)
  return str(png_path)


def plot_matrices(matrices: Mapping[str, np.ndarray], task_names: Sequence[str],
                  png_path: str | os.PathLike, suptitle: str = "") -> str:
  """Annotated [k, k] heat maps side by side, on a diverging scale centred on 0
  (gradient cosines: red = conflict; relatedness matrices).

  Returns:
    `png_path`.
  """
  k = len(task_names)
  size = 1.2 + 0.7 * k
  figure, axes = plt.subplots(1, len(matrices), figsize=(size * len(matrices) + 1, size + 0.8),
                              squeeze=False)
  for axis, (title, matrix) in zip(axes[0], matrices.items()):
    matrix = np.asarray(matrix, float)
    limit = max(float(np.abs(matrix).max()), 1e-12)
    image = axis.imshow(matrix, cmap="RdBu", vmin=-limit, vmax=limit)
    axis.set_xticks(range(k), task_names, rotation=45, ha="right")
    axis.set_yticks(range(k), task_names)
    axis.set_title(title, fontsize=9)
    for i in range(k):
      for j in range(k):
        axis.text(j, i, f"{matrix[i, j]:.2g}", ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
  if suptitle:
    figure.suptitle(suptitle, fontsize=10)
  figure.tight_layout()
  figure.savefig(png_path, dpi=100)
  plt.close(figure)
  return str(png_path)

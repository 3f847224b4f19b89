"""The report figures of one run or of a comparison, and `mtl-jax report`.

`write_figures` draws, from the runs' `train_log.jsonl` records (averaged
over seeds):

* `losses.png`: each task's training loss, one line per setting (a run's
  tasks; multi-task vs single-task in a comparison);
* `weights.png`: the multi-task run's task weights (or aggregation
  coefficients) over time;
* `cosines.png`: the mean cosine similarity of the task gradients (below 0:
  the tasks conflict), where the run logged `balancing.diagnostics`;
* `relatedness.png`: the matrices of the runs' `relatedness.json`, where
  they wrote one.

`run_report(workdir)` writes them, and a `report.md` with the run's metrics,
to `WORKDIR/report/`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from mtl_jax.metrics import plots
from mtl_jax.metrics.report import format_table
from mtl_jax.training.loop import METRICS_FILE, TRAIN_LOG

RELATEDNESS_FILE = "relatedness.json"
REPORT_DIR = "report"
# relatedness.json's matrices and their titles.
RELATEDNESS_MATRICES = {
    "gradient_cosine": "task-gradient cosine",
    "lookahead_affinity": "lookahead affinity (row: step on, col: loss of)",
    "regularizer_relatedness": "regulariser R",
}
Logs = Sequence[Sequence[dict[str, Any]]]


def read_logs(workdirs: Sequence[str]) -> list[list[dict[str, Any]]]:
  """The step records of each workdir's `train_log.jsonl`."""
  return [plots.read_train_log(os.path.join(w, TRAIN_LOG)) for w in workdirs]


def read_relatedness(workdirs: Sequence[str]) -> tuple[list[str], dict[str, np.ndarray]] | None:
  """(tasks, {matrix name: mean over the workdirs}) of their `relatedness.json`; None
  where none wrote one."""
  saved = []
  for workdir in workdirs:
    path = os.path.join(workdir, RELATEDNESS_FILE)
    if os.path.exists(path):
      with open(path) as f:
        saved.append(json.load(f))
  if not saved:
    return None
  keys = [k for k in RELATEDNESS_MATRICES if all(k in s for s in saved)]
  return saved[0]["tasks"], {k: np.mean([s[k] for s in saved], axis=0) for k in keys}


def write_figures(out_dir: str, task_names: Sequence[str], logs: Mapping[str, Logs],
                  multi_task: str, relatedness_workdirs: Sequence[str] = ()
                  ) -> dict[str, str]:
  """Draws the figures of the module docstring.

  Args:
    out_dir: where the PNGs go.
    task_names: the tasks, in the run's order.
    logs: setting (a line label) -> its runs' step records (one list per seed).
    multi_task: the setting whose weights and cosines are drawn.
    relatedness_workdirs: the runs whose `relatedness.json` to average.

  Returns:
    figure name ('losses', 'weights', 'cosines', 'relatedness') -> PNG file
    name in `out_dir`, for those drawn.
  """
  os.makedirs(out_dir, exist_ok=True)
  figures = {}

  def save(name, draw, *args):
    draw(*args, os.path.join(out_dir, f"{name}.png"))
    figures[name] = f"{name}.png"

  losses = {task: {label: plots.mean_curve(runs, "losses", task)
                   for label, runs in logs.items()} for task in task_names}
  save("losses", lambda panels, path: plots.plot_panels(panels, path, "training loss"),
       {task: {label: c for label, c in curves.items() if c[0]}
        for task, curves in losses.items()})
  weights = {task: plots.mean_curve(logs[multi_task], "weights", task) for task in task_names}
  save("weights", lambda panels, path: plots.plot_panels(panels, path, "weight"),
       {f"task weights ({multi_task})": weights})
  cosines = plots.mean_cosines(logs[multi_task])
  if cosines is not None:
    save("cosines", plots.plot_matrices,
         {"task-gradient cosine, mean over steps": cosines}, task_names)
  relatedness = read_relatedness(relatedness_workdirs)
  if relatedness is not None and relatedness[1]:
    names, matrices = relatedness
    save("relatedness", plots.plot_matrices,
         {RELATEDNESS_MATRICES[k]: m for k, m in matrices.items()}, names)
  return figures


def run_report(workdir: str, out_dir: str | None = None) -> str:
  """Writes one run's figures and `report.md` (its metrics and the figures).

  Args:
    workdir: a training workdir (with `train_log.jsonl`).
    out_dir: where to write; default `WORKDIR/report`.

  Returns:
    The path of `report.md`.

  Raises:
    FileNotFoundError: the workdir has no train log.
    ValueError: the train log has no steps.
  """
  out_dir = out_dir or os.path.join(workdir, REPORT_DIR)
  (records,) = read_logs([workdir])
  if not records:
    raise ValueError(f"{os.path.join(workdir, TRAIN_LOG)}: no training steps logged")
  names = list(records[0]["losses"])
  figures = write_figures(out_dir, names, {"this run": [records]}, "this run", [workdir])
  lines = [f"# Run report: `{workdir}`", "",
           f"{len(names)} task(s), {records[-1]['step']} steps.", ""]
  metrics_path = os.path.join(workdir, METRICS_FILE)
  if os.path.exists(metrics_path):
    with open(metrics_path) as f:
      lines += ["```", format_table(json.load(f)), "```", ""]
  lines += [f"![{name}]({png})" for name, png in figures.items()]
  path = os.path.join(out_dir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path

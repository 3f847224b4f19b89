"""Plots of a run's balancing diagnostics, from its `train_log.jsonl`.

`plot_balancing(log, png)` draws, against the step: each task's loss, its
weight (or aggregation coefficient), its gradient norm, and the cosine
similarity of every pair of task gradients (below 0: the tasks conflict);
the last two where the run logged diagnostics (`balancing.diagnostics`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import matplotlib

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

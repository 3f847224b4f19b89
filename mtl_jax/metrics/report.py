"""Evaluation results: a printed table and `metrics.json`."""

from __future__ import annotations

import json
import os
from typing import Mapping

Results = Mapping[str, Mapping[str, float]]


def format_table(results: Results) -> str:
  """A plain-text table: one row per task, one column per metric."""
  metrics = sorted({m for values in results.values() for m in values})
  name_width = max([len("task")] + [len(t) for t in results])
  widths = [max(len(m), 7) for m in metrics]
  lines = ["  ".join(["task".ljust(name_width)] + [m.rjust(w) for m, w in zip(metrics, widths)])]
  for task, values in results.items():
    cells = [f"{values[m]:.4f}".rjust(w) if m in values else "-".rjust(w)
             for m, w in zip(metrics, widths)]
    lines.append("  ".join([task.ljust(name_width)] + cells))
  return "\n".join(lines)


def write_json(results: Results, path: str) -> None:
  """Writes `{task: {metric: value}}` atomically (never a half-written file)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump({t: dict(v) for t, v in results.items()}, f, indent=2, sort_keys=True)
  os.replace(tmp, path)

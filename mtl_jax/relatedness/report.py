"""The measured relatedness of a run: `relatedness.json` and a heat-map `relatedness.png`.

The JSON holds the task order, each matrix averaged over the measurements
so far, and every measurement with its step, so a resumed run continues
the same averages (measurements after the checkpoint it resumes from are
dropped and taken again).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

import numpy as np

JSON_FILE = "relatedness.json"
PNG_FILE = "relatedness.png"
MATRICES = ("gradient_cosine", "lookahead_affinity")
TITLES = {
    "gradient_cosine": "task-gradient cosine",
    "lookahead_affinity": "lookahead affinity (row: step on, col: loss of)",
    "regularizer_relatedness": "regulariser R",
}


@dataclasses.dataclass
class RelatednessLog:
  """Measurements of one run: `add` each, `write` the JSON and the heat map."""

  task_names: tuple[str, ...]
  measurements: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  # The regulariser's R (prior or learned at the last measurement), if any.
  regularizer_relatedness: np.ndarray | None = None

  def add(self, step: int, values: dict[str, Any]) -> None:
    """Records one measurement (`relatedness_measures`' output, host arrays)."""
    self.measurements.append({"step": int(step), **{
        key: np.asarray(values[key], np.float64).tolist()
        for key in MATRICES + ("losses",)}})

  def mean(self, key: str) -> np.ndarray:
    """[k, k] the average of a matrix over the measurements."""
    if not self.measurements:
      raise ValueError("no relatedness measurements yet")
    return np.mean([m[key] for m in self.measurements], axis=0)

  def to_json(self) -> dict[str, Any]:
    out: dict[str, Any] = {"tasks": list(self.task_names),
                           "num_measurements": len(self.measurements)}
    if self.measurements:
      out.update({key: self.mean(key).tolist() for key in MATRICES})
    if self.regularizer_relatedness is not None:
      out["regularizer_relatedness"] = np.asarray(self.regularizer_relatedness).tolist()
    out["measurements"] = self.measurements
    return out

  @classmethod
  def load(cls, workdir: str, task_names: Sequence[str], before_step: int
           ) -> "RelatednessLog":
    """The workdir's log, keeping measurements up to `before_step` (a resume's step)."""
    log = cls(tuple(task_names))
    path = os.path.join(workdir, JSON_FILE)
    if not os.path.exists(path):
      return log
    with open(path) as f:
      saved = json.load(f)
    if saved.get("tasks") != list(task_names):
      raise ValueError(f"{path}: measured for tasks {saved.get('tasks')}, but this run's "
                       f"tasks are {list(task_names)}; move the file away to start afresh")
    log.measurements = [m for m in saved["measurements"] if m["step"] <= before_step]
    return log

  def write(self, workdir: str, plot: bool = True) -> None:
    """Writes `relatedness.json` (atomically) and, with `plot`, `relatedness.png`."""
    path = os.path.join(workdir, JSON_FILE)
    with open(path + ".tmp", "w") as f:
      json.dump(self.to_json(), f, indent=1)
    os.replace(path + ".tmp", path)
    if plot and self.measurements:
      matrices = {key: self.mean(key) for key in MATRICES}
      if self.regularizer_relatedness is not None:
        matrices["regularizer_relatedness"] = np.asarray(self.regularizer_relatedness)
      from mtl_jax.metrics import plots  # matplotlib only where it is used
      plots.plot_matrices({TITLES.get(key, key): matrix for key, matrix in matrices.items()},
                          self.task_names, os.path.join(workdir, PNG_FILE),
                          suptitle=f"task relatedness, mean of {len(self.measurements)} "
                                   "measurements")


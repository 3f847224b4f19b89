"""Overlays several training runs: one line per run in each task's panel.

Draws, from each run's `train_log.jsonl`, the figures that compare methods
(e.g. the balancing table of RESULTS.md):

* `losses.png`: each task's training loss;
* `weights.png`: each task's weight (or aggregation coefficient);
* `grad_norms.png` and `cosines.png`: each task's gradient norm on the
  shared parameters and the cosine of each pair of task gradients, for the
  runs that logged `balancing.diagnostics`.

    python experiments/overlay_runs.py --out experiments/results/balancing \\
        equal=runs/agnews_compare/multi_task/seed_0 gradnorm=runs/balancing/gradnorm

Each positional argument is LABEL=WORKDIR.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

from mtl_jax.metrics import plots
from mtl_jax.reports import figures


def pair_cosine(records, first: int, second: int):
  """(steps, cosine of tasks `first` and `second`) where the records have it."""
  steps, values = [], []
  for record in records:
    if "grad_cosines" in record:
      steps.append(record["step"])
      values.append(record["grad_cosines"][first][second])
  return steps, values


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="folder for the PNGs")
  parser.add_argument("runs", nargs="+", metavar="LABEL=WORKDIR")
  args = parser.parse_args(argv)
  runs = {}
  for item in args.runs:
    label, sep, workdir = item.partition("=")
    if not sep or not label or not workdir:
      parser.error(f"{item!r} is not LABEL=WORKDIR")
    (records,) = figures.read_logs([workdir])
    if not records:
      parser.error(f"{workdir}: no training steps logged")
    runs[label] = records
  tasks = list(next(iter(runs.values()))[0]["losses"])
  os.makedirs(args.out, exist_ok=True)

  def per_task(key):
    return {task: {label: c for label, records in runs.items()
                   if (c := plots.mean_curve([records], key, task))[0]}
            for task in tasks}

  written = [plots.plot_panels(per_task("losses"), os.path.join(args.out, "losses.png"),
                               "training loss (mean since last log)")]
  written.append(plots.plot_panels(per_task("weights"), os.path.join(args.out, "weights.png"),
                                   "weight"))
  norms = per_task("grad_norms")
  if any(norms.values()):
    written.append(plots.plot_panels(norms, os.path.join(args.out, "grad_norms.png"),
                                     "gradient norm"))
  cosines = {f"{tasks[i]} vs {tasks[j]}": {label: c for label, records in runs.items()
                                           if (c := pair_cosine(records, i, j))[0]}
             for i, j in itertools.combinations(range(len(tasks)), 2)}
  if any(cosines.values()):
    written.append(plots.plot_panels(cosines, os.path.join(args.out, "cosines.png"),
                                     "task-gradient cosine"))
  print("\n".join(written))


if __name__ == "__main__":
  sys.exit(main())

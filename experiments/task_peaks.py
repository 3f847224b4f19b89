"""Where each task of a multi-task run peaks on its held-out slice, against the kept checkpoint.

A multi-task run keeps one checkpoint, the one with the best mean of the
tasks' main scores on the held-out slice of train; a task whose own best
evaluation came at another step pays for that choice. This reads a
comparison's runs (`mtl-jax compare --holdout`) and prints, per task and
seed, the held-out main score of the multi-task run's kept checkpoint, the
best of its evaluations (and their step), and the single-task run's kept
checkpoint: the first two differ by what the shared checkpoint costs the
task, the last two by what training beside the other tasks costs it. The
last column, each run's final training loss of the task, says whether the
multi-task run fits the task's train split as closely as the task alone.

    python experiments/task_peaks.py experiments/results/tuned_glue

Runs made before the loop logged its last evaluation (`train_log.jsonl`)
show the kept checkpoint's score for the last step when it was kept there,
and no score for it otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def _read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def _records(workdir: str) -> list[dict[str, Any]]:
  with open(os.path.join(workdir, "train_log.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def evaluations(workdir: str) -> dict[int, dict[str, dict[str, float]]]:
  """{step: results} of the run's logged evaluations."""
  return {r["step"]: r["eval"] for r in _records(workdir) if "eval" in r}


def _last_train_loss(workdir: str, task: str, count: int = 3) -> float:
  """The mean of the task's last `count` logged training losses (how well it fits train)."""
  losses = [r["losses"][task] for r in _records(workdir) if "losses" in r]
  return sum(losses[-count:]) / len(losses[-count:])


def peaks(report: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per task and seed, from a comparison's `report.json`.

  Args:
    report: `mtl_jax.reports.compare.summarize`'s output (its `runs` name the workdirs).

  Returns:
    Rows {task, seed, metric, kept, kept_step, best, best_step, single, multi_loss,
    single_loss}: held-out main scores (`metrics.json` of each run, the kept
    checkpoint's; `best` over the multi-task run's logged evaluations and its kept
    checkpoint), and the mean of each run's last three logged training losses of the task.
  """
  multi = {run["seed"]: run["workdir"] for run in report["runs"] if run["task"] is None}
  single = {(run["task"], run["seed"]): run["workdir"]
            for run in report["runs"] if run["task"] is not None}
  rows = []
  for seed, workdir in sorted(multi.items()):
    kept = _read_json(os.path.join(workdir, "metrics.json"))
    logged = evaluations(workdir)
    kept_step = next((step for step, results in logged.items() if results == kept), None)
    for task, results in kept.items():
      key = report["tasks"][task]["metric"]  # the task's main metric, as the report chose
      scores = {step: r[task][key] for step, r in logged.items()}
      scores.setdefault(kept_step, results[key])  # the last step's, where it was not logged
      # Ties go to the earliest step (None, the unlogged last step, is the latest).
      best_step = max(scores, key=lambda step: (
          scores[step], -(step if step is not None else float("inf"))))
      single_results = _read_json(os.path.join(single[task, seed], "metrics.json"))[task]
      rows.append({"task": task, "seed": seed, "metric": key, "kept": results[key],
                   "kept_step": kept_step, "best": scores[best_step], "best_step": best_step,
                   "single": single_results[key],
                   "multi_loss": _last_train_loss(workdir, task),
                   "single_loss": _last_train_loss(single[task, seed], task)})
  return rows


def markdown(rows: list[dict[str, Any]]) -> str:
  """The rows as a markdown table (steps in brackets; "last" where not logged)."""
  lines = ["| task | seed | metric | multi-task, kept (step) | multi-task, best (step) "
           "| single-task, kept | train loss, multi / single |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
  for r in rows:
    kept_step = r["kept_step"] if r["kept_step"] is not None else "last"
    best_step = r["best_step"] if r["best_step"] is not None else "last"
    lines.append(f"| {r['task']} | {r['seed']} | {r['metric']} | {r['kept']:.3f} ({kept_step}) "
                 f"| {r['best']:.3f} ({best_step}) | {r['single']:.3f} "
                 f"| {r['multi_loss']:.3f} / {r['single_loss']:.3f} |")
  return "\n".join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("workdir", help="the comparison's workdir (with report.json)")
  args = parser.parse_args(argv)
  print(markdown(peaks(_read_json(os.path.join(args.workdir, "report.json")))))


if __name__ == "__main__":
  main()

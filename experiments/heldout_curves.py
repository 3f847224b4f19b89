"""Two runs' logged evaluations side by side: each task's main score at each step, and the mean.

For an ablation read on the held-out slice (`train.eval_split=heldout`):
which run is ahead on which task, at which step. Each task's main score is
the first metric of its logged results (the kind's main metric).

    python experiments/heldout_curves.py \
        experiments/results/tuned_glue/selection/multi_task/lr_0.0002 \
        experiments/results/tuned_glue_task_clip/selection/multi_task/lr_0.0002
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import task_peaks  # noqa: E402  (one reader of the logged evaluations for both scripts)


def evaluations(workdir: str) -> dict[int, dict[str, float]]:
  """{step: {task: main score}} of the run's logged evaluations."""
  return {step: {task: next(iter(metrics.values())) for task, metrics in results.items()}
          for step, results in task_peaks.evaluations(workdir).items()}


def markdown(first: dict[int, dict[str, float]], second: dict[int, dict[str, float]]) -> str:
  """A table: per step, 'first / second' for each task and for the mean over the tasks."""
  tasks = sorted({task for run in (first, second) for scores in run.values() for task in scores})

  def cell(run, step, task=None):
    scores = run.get(step)
    if scores is None:
      return "-"
    return f"{scores[task]:.3f}" if task else f"{sum(scores.values()) / len(scores):.4f}"

  lines = ["| step | " + " | ".join(tasks) + " | mean |", "| --- |" + " --- |" * (len(tasks) + 1)]
  for step in sorted(set(first) | set(second)):
    cells = [f"{cell(first, step, t)} / {cell(second, step, t)}" for t in tasks]
    cells.append(f"{cell(first, step)} / {cell(second, step)}")
    lines.append(f"| {step} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("first", help="a run's workdir")
  parser.add_argument("second", help="the run to set beside it")
  args = parser.parse_args(argv)
  print(markdown(evaluations(args.first), evaluations(args.second)))


if __name__ == "__main__":
  main()

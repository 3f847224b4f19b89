"""Each task's part of the shared gradient, by windows of steps, from a diagnostics run's log.

A run with `balancing.diagnostics=True` logs, at each logged step, every
task's encoder-gradient norm and the tasks' pairwise cosines
(`train_log.jsonl`). Per window of steps this prints the median norm of each
task, its mean share of the squared norms (with gradients near orthogonal,
its share of the summed gradient's squared norm, which one Adam state
normalises every coordinate by) and its mean cosine with the other tasks.

    python experiments/gradient_shares.py \\
        experiments/results/glue_ablations/equal_diagnostics/train_log.jsonl --window 100
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def shares(records: list[dict], window: int) -> list[dict]:
  """Rows {first, last, steps, norms, shares, cosines} per window of `window` steps.

  Args:
    records: the log's step records with `grad_norms` and `grad_cosines`.
    window: steps per window; window w holds the steps in (w * window, (w + 1) * window].
  """
  names = list(records[0]["grad_norms"])
  by_window: dict[int, list[dict]] = {}
  for record in records:
    by_window.setdefault((record["step"] - 1) // window, []).append(record)
  rows = []
  for index, group in sorted(by_window.items()):
    norms = np.array([[r["grad_norms"][n] for n in names] for r in group])
    squares = norms ** 2
    cosines = np.mean([r["grad_cosines"] for r in group], axis=0)
    others = (cosines.sum(axis=1) - 1.0) / max(len(names) - 1, 1)
    rows.append({"first": index * window + 1, "last": (index + 1) * window,
                 "steps": len(group),
                 "norms": dict(zip(names, np.median(norms, axis=0).tolist())),
                 "shares": dict(zip(names, (squares / squares.sum(1, keepdims=True))
                                    .mean(axis=0).tolist())),
                 "cosines": dict(zip(names, others.tolist()))})
  return rows


def markdown(rows: list[dict]) -> str:
  names = list(rows[0]["norms"])
  lines = ["| steps (logged) | " + " | ".join(names) + " |",
           "| --- |" + " --- |" * len(names)]
  for row in rows:
    cells = [f"{row['norms'][n]:.2f}, {row['shares'][n]:.2f}, {row['cosines'][n]:+.3f}"
             for n in names]
    lines.append(f"| {row['first']}-{row['last']} ({row['steps']}) | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n\nEach cell: median norm, mean share of the squared norms, " \
      "mean cosine with the other tasks."


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("log", help="a train_log.jsonl of a run with balancing.diagnostics=True")
  parser.add_argument("--window", type=int, default=100, help="steps per window")
  args = parser.parse_args(argv)
  with open(args.log) as f:
    records = [json.loads(line) for line in f if line.strip()]
  records = [r for r in records if "grad_norms" in r]
  if not records:
    raise SystemExit(f"{args.log}: no gradient diagnostics (train with "
                     "balancing.diagnostics=True)")
  print(markdown(shares(records, args.window)))


if __name__ == "__main__":
  main()

"""The headline figures of the tuned comparisons as one JSON a script can read.

Reads each setup's `mtl-jax compare` report (`report.json`) and writes
`experiments/results/quality.json`:

    {setup: {task: {metric, single_mean, single_std, multi_mean, multi_std,
                    seeds, commit[, test: {single_mean, single_std, multi_mean,
                    multi_std}]}}}

(dev's figures; `test`, or any further split, where the runs scored one).

`commit` is the library the setup's runs loaded (given on the command line:
a report does not know it). Setups already in the output and not given again
are kept, so each setup is added when its comparison finishes.

    python experiments/quality.py \\
        agnews_conll=experiments/results/tuned_agnews_conll/report.json@db23a17
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "quality.json")


def headline(report: dict[str, Any], commit: str) -> dict[str, dict[str, Any]]:
  """One setup's entry: per task, its main metric in both settings over seeds.

  Args:
    report: a comparison's `report.json` (`mtl_jax.reports.compare.summarize`).
    commit: the commit the runs loaded.
  """
  entries = {task: {**_figures(row), "metric": row["metric"], "seeds": list(report["seeds"]),
                    "commit": commit}
             for task, row in report["tasks"].items()}
  # Further splits the runs scored once at their end (CoNLL-2003's test), beside dev's.
  for split, rows in report.get("other_splits", {}).items():
    for task, row in rows.items():
      entries[task][split] = _figures(row)
  return entries


def _figures(row: dict[str, Any]) -> dict[str, float]:
  return {"single_mean": row["single_task"]["mean"], "single_std": row["single_task"]["std"],
          "multi_mean": row["multi_task"]["mean"], "multi_std": row["multi_task"]["std"]}


def parse_setup(argument: str) -> tuple[str, str, str]:
  """'SETUP=REPORT_JSON@COMMIT' -> (setup, path, commit).

  Raises:
    ValueError: the argument does not have that form.
  """
  setup, _, rest = argument.partition("=")
  path, _, commit = rest.rpartition("@")
  if not (setup and path and commit):
    raise ValueError(f"expected SETUP=REPORT_JSON@COMMIT, got {argument!r}")
  return setup, path, commit


def main(argv=None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("setups", nargs="+", metavar="SETUP=REPORT_JSON@COMMIT")
  parser.add_argument("--out", default=OUT)
  args = parser.parse_args(argv)
  quality = {}
  if os.path.exists(args.out):
    with open(args.out) as f:
      quality = json.load(f)
  for argument in args.setups:
    try:
      setup, path, commit = parse_setup(argument)
    except ValueError as error:
      parser.error(str(error))
    with open(path) as f:
      quality[setup] = headline(json.load(f), commit)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".tmp", "w") as f:
    json.dump(quality, f, indent=2, sort_keys=True)
  os.replace(args.out + ".tmp", args.out)
  return quality


if __name__ == "__main__":
  main()

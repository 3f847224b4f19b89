"""A CoLA run's dev Matthews correlation on the in-domain and the out-of-domain halves.

GLUE's CoLA dev split mixes sentences from the sources of its train split
(the in-domain dev set) with sentences from sources train never draws on
(the out-of-domain dev set): a held-out slice of train can only show the
first. This predicts the dev split with a run's checkpoint and scores each
half apart, the halves told by the source column (the first) of each row.

    python experiments/cola_domains.py experiments/results/glue_single_budget/glue_cola \
        [--step best] [--data ../shared/data/glue/CoLA]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def read_tsv(path: str) -> list[list[str]]:
  """CoLA's rows: source, label, original mark, sentence (no header)."""
  with open(path, encoding="utf-8") as f:
    return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def by_domain(train_rows, dev_rows, predictions) -> dict[str, tuple[int, float]]:
  """{'all' | 'in-domain' | 'out-of-domain': (rows, Matthews correlation)}."""
  from mtl_jax.metrics import matthews_corr

  sources = {row[0] for row in train_rows}
  halves = {"all": lambda source: True, "in-domain": lambda source: source in sources,
            "out-of-domain": lambda source: source not in sources}
  scores = {}
  for name, keep in halves.items():
    rows = [i for i, row in enumerate(dev_rows) if keep(row[0])]
    predicted = np.asarray([str(predictions[i]) for i in rows])
    scores[name] = (len(rows), matthews_corr(predicted, np.asarray([dev_rows[i][1] for i in rows])))
  return scores


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdir", help="a run with a glue_cola task")
  parser.add_argument("--step", default="best", help="checkpoint: a step, 'latest' or 'best'")
  parser.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                      "glue", "CoLA"))
  args = parser.parse_args(argv)

  from mtl_jax.predict import Predictor

  step = int(args.step) if args.step.isdigit() else args.step
  dev_rows = read_tsv(os.path.join(args.data, "dev.tsv"))
  predictions = Predictor.from_workdir(args.workdir, step).predict(
      "glue_cola", [row[3] for row in dev_rows])
  scores = by_domain(read_tsv(os.path.join(args.data, "train.tsv")), dev_rows, predictions)
  for name, (rows, mcc) in scores.items():
    print(f"{name:14s} {rows:5d} rows  Matthews correlation {mcc:.3f}")


if __name__ == "__main__":
  main()

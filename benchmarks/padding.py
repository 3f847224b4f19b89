"""How many of a step's token slots hold real tokens: the padding each step pays.

A step pads every task's batch to one length, the longest of the tasks'
buckets (`training/schedules.scheduled_batches`), so that the tasks stack
into one encoder pass. The position-wise layers (the QKV, output and
feed-forward products, the layer norms, GELU: most of the encoder's work at
these lengths) run on every slot, real or padding. This counts, over the
first `--steps` steps of a config's own batch order (its seed, streams and
schedule), per step:

* real: the tokens the attention masks mark;
* slots: rows x the step's length (what the step computes on);
* own slots: rows x each task's own bucket (what the step would compute on
  if each task kept its length: per-task passes, or packing);
* compact rows: the buffer `train.token_buckets` runs the encoder on (the real
  tokens rounded up to 1/K of the step's slots), and the (length, capacity)
  programs a run of these steps compiles.

A count over the real data, not a timing: it is the same on any machine.

  python benchmarks/padding.py --config experiments/configs/glue_mtl.py:steps=1000 \
      [--steps 1000] [--token-buckets 8] [--set KEY=VALUE ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from typing import Iterable, Mapping

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from recipe import recipe_batches  # noqa: E402  (the recipe's own batch order)


def count(steps: Iterable[Mapping[str, Mapping[str, np.ndarray]]], buckets,
          token_buckets: int = 8) -> dict:
  """Real tokens, slots and own-bucket slots of each step's batch, summed.

  Args:
    steps: batches as the loop gets them ({task: {"attention_mask": [b, l], ...}},
      every task padded to the step's length).
    buckets: the run's length buckets (a task's own length is the bucket of its
      longest example in the batch).
    token_buckets: `train.token_buckets` for the capacity columns (> 0).

  Returns:
    {"steps", "real", "slots", "own_slots", "per_task": {task: {...}}}, sums;
    "capacity": the compact buffers' rows with `token_buckets`, summed, and
    "programs": the distinct [length, capacity] pairs (one compilation each).
  """
  from mtl_jax.tasks.batching import bucket_length, token_capacity

  totals = {"steps": 0, "real": 0, "slots": 0, "own_slots": 0, "capacity": 0,
            "programs": set(), "per_task": {}}
  for batch in steps:
    totals["steps"] += 1
    capacity = token_capacity([b["attention_mask"] for b in batch.values()], token_buckets)
    totals["capacity"] += capacity
    totals["programs"].add((next(iter(batch.values()))["attention_mask"].shape[1], capacity))
    for task, arrays in batch.items():
      mask = np.asarray(arrays["attention_mask"])
      lengths = mask.sum(axis=1)
      real = int(lengths.sum())
      own = mask.shape[0] * bucket_length(int(lengths.max()), buckets) if real else 0
      for where in (totals, totals["per_task"].setdefault(
          task, {"real": 0, "slots": 0, "own_slots": 0})):
        where["real"] += real
        where["slots"] += mask.size
        where["own_slots"] += own
  totals["programs"] = sorted(totals["programs"])
  return totals


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True, help="path.py[:arg]")
  parser.add_argument("--steps", type=int, default=None,
                      help="steps counted (default: the config's train.steps)")
  parser.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE")
  parser.add_argument("--token-buckets", type=int, default=8,
                      help="train.token_buckets for the capacity line (default 8)")
  parser.add_argument("--json", help="also write the counts here")
  args = parser.parse_args(argv)

  from mtl_jax import config as config_lib

  config = config_lib.apply_overrides(config_lib.load_config(args.config), args.overrides)
  _, batches = recipe_batches(config)
  steps = args.steps or config.train.steps
  totals = count(itertools.islice(batches, steps), config.train.buckets, args.token_buckets)
  print(f"{args.config}, {steps} steps, buckets {tuple(config.train.buckets)}")
  print(f"{'task':16s} {'real/step':>10s} {'slots/step':>10s} {'real share':>10s} "
        f"{'own slots':>10s} {'real/own':>8s}")
  for name, row in [*totals["per_task"].items(), ("all", totals)]:
    print(f"{name:16s} {row['real'] / steps:10.0f} {row['slots'] / steps:10.0f} "
          f"{row['real'] / row['slots']:10.3f} {row['own_slots'] / steps:10.0f} "
          f"{row['real'] / max(row['own_slots'], 1):8.3f}")
  print(f"slots per step at each task's own length: {totals['own_slots'] / totals['slots']:.3f} "
        "of the step's")
  compact = totals["capacity"] / totals["slots"]
  print(f"token_buckets={args.token_buckets}: compact rows {compact:.3f} of the step's slots, "
        f"{len(totals['programs'])} programs {totals['programs']}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(totals, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())

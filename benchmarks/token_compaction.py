"""A recipe's real train step with and without token compaction, side by side.

The step the loop runs (`Trainer.jit_loop_step`: guarded, keyed on device,
state donated) over the first `--steps` batches of a config's own batch
order (its data, seed, streams and schedule), once as configured
(`train.token_buckets=0`: every padded slot) and once with
`train.token_buckets=K` (the encoder on each step's real tokens, in a
buffer rounded up to 1/K of the step's slots; with per-task gradients, each
task's pass on the largest task's real tokens, rounded on its own slots).
Every (length, capacity) program is compiled before the timing. Then `--rounds` rounds, the order
alternating (padded first in even rounds); each round runs both over the
same batches from the same state. Prints seconds per step per round and the
paired ratio compact / padded (min, median, max); the last line is
`ratio compact <median>`.

With `--evaluation`, the same comparison for the loop's evaluation instead:
`training.evaluate` over the recipe's `train.eval_split` (every task that has
it, whole, at `train.eval_batch_size` in length order), from the initial
params; each round evaluates once per mode, and the seconds are per
evaluation. Both modes' metrics are printed, to be seen equal.

  python benchmarks/token_compaction.py --config experiments/configs/glue_mtl.py:steps=1000 \
      [--steps 16] [--rounds 4] [--token-buckets 8] [--set KEY=VALUE ...] [--json out.json]
  python benchmarks/token_compaction.py --config ... --evaluation [--set train.eval_split=heldout]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import recipe  # noqa: E402  (the loop's step on the recipe's own batches)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True, help="path.py[:arg]")
  parser.add_argument("--steps", type=int, default=16, help="batches per round")
  parser.add_argument("--rounds", type=int, default=4)
  parser.add_argument("--token-buckets", type=int, default=8)
  parser.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE")
  parser.add_argument("--evaluation", action="store_true",
                      help="time the evaluation of the eval split instead of train steps")
  parser.add_argument("--json", help="also write the timings here")
  args = parser.parse_args(argv)
  if args.evaluation:
    return time_evaluation(args)

  import jax
  import numpy as np

  from mtl_jax import config as config_lib
  from mtl_jax.tasks.batching import with_token_slots
  from mtl_jax.training import loop

  config = config_lib.apply_overrides(config_lib.load_config(args.config), args.overrides)
  config.train.token_buckets = 0
  with recipe.recipe_step(config) as step:
    trainer, names, each_task = step.trainer, step.names, step.each_task
    padded = list(itertools.islice(step.batches, args.steps))
    compact = [with_token_slots(batch, args.token_buckets, each_task) for batch in padded]
    device_batches = {mode: [step.layout.put_batch(b) for b in batches]
                      for mode, batches in (("padded", padded), ("compact", compact))}

    def run_steps(mode):
      state, counts = trainer.create_state(step.run), step.counts
      jax.block_until_ready(state)
      start = time.perf_counter()
      for batch in device_batches[mode]:
        state, counts, metrics = step.loop_step(state, counts, batch)
      jax.block_until_ready((state, metrics))
      return (time.perf_counter() - start) / len(device_batches[mode])

    shapes = {mode: sorted({loop.step_shape(b, names) for b in batches},
                           key=lambda s: (s[0], s[1] or 0))
              for mode, batches in (("padded", padded), ("compact", compact))}
    real = sum(int(np.count_nonzero(t["attention_mask"])) for b in padded
               for n, t in b.items())
    slots = sum(t["attention_mask"].size for b in padded for t in b.values())
    # Rows the step's encoder passes compute on: one buffer, or one per task.
    capacity = sum(loop.step_shape(b, names)[1] * (len(names) if each_task else 1)
                   for b in compact)
    print(f"{args.config}: {args.steps} steps; real tokens {real / slots:.3f} of the slots, "
          f"capacity {capacity / slots:.3f}; programs {shapes}", flush=True)
    start = time.perf_counter()
    for mode in ("padded", "compact"):  # compiles every program once
      run_steps(mode)
    print(f"warm-up (compiles) {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for r in range(args.rounds):
      order = ("padded", "compact") if r % 2 == 0 else ("compact", "padded")
      seconds = {mode: run_steps(mode) for mode in order}
      rows.append(seconds)
      print(f"round {r}: padded {seconds['padded']:.3f} s/step, compact "
            f"{seconds['compact']:.3f} s/step, ratio "
            f"{seconds['compact'] / seconds['padded']:.3f}", flush=True)
  _report(args, rows, {"steps": args.steps, "real_share": real / slots,
                       "capacity_share": capacity / slots})
  return 0


def _report(args, rows, extra) -> None:
  import numpy as np

  ratios = sorted(row["compact"] / row["padded"] for row in rows)
  print(f"paired ratio compact / padded: min {ratios[0]:.3f} median "
        f"{float(np.median(ratios)):.3f} max {ratios[-1]:.3f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"config": args.config, "token_buckets": args.token_buckets, **extra,
                 "rounds": rows, "ratios": ratios}, f, indent=2)
  print(f"ratio compact {float(np.median(ratios)):.3f}")


def time_evaluation(args) -> int:
  """`--evaluation`: the loop's evaluation of the eval split, padded and compact."""
  import jax
  import numpy as np

  from mtl_jax import config as config_lib
  from mtl_jax import sharding
  from mtl_jax.tasks.batching import eval_batches
  from mtl_jax.training import loop
  from mtl_jax.training import run as run_lib
  from mtl_jax.training.evaluate import evaluate
  from mtl_jax.training.step import make_predict_step

  config = config_lib.apply_overrides(config_lib.load_config(args.config), args.overrides)
  config.train.token_buckets = args.token_buckets
  run_lib.validate(config)  # the architecture compacts, one device
  run = run_lib.prepare(config)
  _, splits = loop.load_splits(run)
  train = config.train
  real = slots = 0
  for split in splits.values():
    for _, batch in eval_batches(split, train.eval_batch_size, train.buckets):
      real += int(np.count_nonzero(batch["attention_mask"]))
      slots += batch["attention_mask"].size
  layout = sharding.Layout.from_config(config.mesh)
  with layout.activate():
    params = run_lib.make_trainer(run, layout).create_state(run).params
    predict = jax.jit(make_predict_step(run.model), out_shardings=layout.replicated)

    def run_evaluation(mode):
      start = time.perf_counter()
      results = evaluate(lambda p, b: predict(p, layout.put_batch(b)), params, splits,
                         run.kinds, run.labels, train.eval_batch_size, train.buckets,
                         args.token_buckets if mode == "compact" else 0)
      return time.perf_counter() - start, results

    examples = sum(len(split) for split in splits.values())
    print(f"{args.config}: evaluation of {train.eval_split} ({examples} examples of "
          f"{', '.join(splits)}); real tokens {real / slots:.3f} of the slots", flush=True)
    start = time.perf_counter()
    for mode in ("padded", "compact"):  # compiles every program once
      print(f"{mode}: {run_evaluation(mode)[1]}", flush=True)
    print(f"warm-up (compiles) {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for r in range(args.rounds):
      order = ("padded", "compact") if r % 2 == 0 else ("compact", "padded")
      seconds = {mode: run_evaluation(mode)[0] for mode in order}
      rows.append(seconds)
      print(f"round {r}: padded {seconds['padded']:.2f} s, compact {seconds['compact']:.2f} s, "
            f"ratio {seconds['compact'] / seconds['padded']:.3f}", flush=True)
  _report(args, rows, {"evaluation": train.eval_split, "examples": examples,
                       "real_share": real / slots})
  return 0


if __name__ == "__main__":
  sys.exit(main())

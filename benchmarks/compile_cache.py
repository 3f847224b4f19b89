"""What JAX's persistent compilation cache saves a run: its step programs, cold and warm.

A run compiles its step once per length bucket (and token capacity, with
`train.token_buckets`), and again in every process: each resumption, each
seed and each setting of `compare`, `pareto` and the learning-rate selection.
With `JAX_COMPILATION_CACHE_DIR` set, JAX keeps each compiled program on disk
and a later process with the same program loads it instead.

Each round makes an empty cache folder and runs two fresh worker processes on
it, one after the other: the first compiles every program the first
`--steps` batches of the recipe's own batch order need (the loop's step,
`Trainer.jit_loop_step`) and fills the cache, the second finds them there.
Each worker reports its seconds in `lower().compile()` per program and JAX's
own cache counters. Prints both per round and the paired ratio warm / cold
(min, median, max); the last line is `ratio warm <median>`.

  python benchmarks/compile_cache.py --config experiments/configs/agnews_conll.py:steps=1760 \
      [--steps 200] [--rounds 2] [--set KEY=VALUE ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def worker(args) -> dict:
  """Compiles the step programs of the recipe's first batches (in this process's cache)."""
  from jax import monitoring

  import recipe  # the loop's step on the recipe's own batches
  from mtl_jax import config as config_lib
  from mtl_jax.tasks.batching import with_token_slots
  from mtl_jax.training import loop

  events = collections.Counter()
  monitoring.register_event_listener(lambda event, **_: events.update([event]))
  monitoring.register_event_duration_secs_listener(
      lambda event, seconds, **_: events.update({event + " (s)": seconds}))
  config = config_lib.apply_overrides(config_lib.load_config(args.config), args.overrides)
  with recipe.recipe_step(config) as step:
    state = step.trainer.create_state(step.run)
    firsts = {}  # the first batch of each program
    for batch in itertools.islice(step.batches, args.steps):
      if config.train.token_buckets:
        batch = with_token_slots(batch, config.train.token_buckets, step.each_task)
      firsts.setdefault(loop.step_shape(batch, step.names), batch)
    seconds = {}
    for shape, batch in sorted(firsts.items(), key=lambda item: (item[0][0], item[0][1] or 0)):
      start = time.perf_counter()
      step.loop_step.lower(state, step.counts, step.layout.put_batch(batch)).compile()
      seconds[str(shape)] = time.perf_counter() - start
  return {"programs": seconds, "seconds": sum(seconds.values()),
          "cache_hits": events["/jax/compilation_cache/cache_hits"],
          "cache_retrieval_seconds": events["/jax/compilation_cache/cache_retrieval_time_sec (s)"]}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True, help="path.py[:arg]")
  parser.add_argument("--steps", type=int, default=200,
                      help="the recipe's first batches whose programs are compiled")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE")
  parser.add_argument("--json", help="also write the timings here")
  parser.add_argument("--worker", metavar="OUT", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    with open(args.worker, "w") as f:
      json.dump(worker(args), f)
    return 0

  import numpy as np

  command = [sys.executable, os.path.abspath(__file__), "--config", args.config,
             "--steps", str(args.steps)] + [f"--set={o}" for o in args.overrides]
  rows = []
  for r in range(args.rounds):
    row = {}
    with tempfile.TemporaryDirectory() as cache:
      for mode in ("cold", "warm"):
        out = os.path.join(cache, f"{mode}.json")
        env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": os.path.join(cache, "jax")}
        subprocess.run(command + ["--worker", out], env=env, check=True)
        with open(out) as f:
          row[mode] = json.load(f)
    rows.append(row)
    cold, programs = row["cold"], len(row["cold"]["programs"])
    print(f"round {r}: {programs} programs; cold {cold['seconds']:.1f} s "
          f"({cold['cache_hits']} cache hits), warm {row['warm']['seconds']:.1f} s "
          f"({row['warm']['cache_hits']} cache hits, "
          f"{row['warm']['cache_retrieval_seconds']:.1f} s reading them), ratio "
          f"{row['warm']['seconds'] / row['cold']['seconds']:.3f}", flush=True)
  ratios = sorted(row["warm"]["seconds"] / row["cold"]["seconds"] for row in rows)
  print(f"paired ratio warm / cold: min {ratios[0]:.3f} median {float(np.median(ratios)):.3f} "
        f"max {ratios[-1]:.3f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"config": args.config, "steps": args.steps, "overrides": args.overrides,
                 "rounds": rows, "ratios": ratios}, f, indent=2)
  print(f"ratio warm {float(np.median(ratios)):.3f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())

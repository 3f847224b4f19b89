"""The loop's step with the dense products through the BLAS custom call vs XLA's, in one process.

The `step_speed.py` workload and step (`build_jax_step`: the guarded,
donated step `training/loop.py` runs), built twice in one process, once
with `matmul_impl="blas"` and once with `"xla"`; then single steps of the
two alternate (who goes first alternates by pair), each timed to its
result. Pairing steps seconds apart cancels the drift of a shared
machine's speed that separate processes minutes apart do not. Prints the
median step of each and the paired ratio blas / xla (min, median, max),
the share of CPU time the hypervisor stole meanwhile, and the losses of
the last pair (the same function: they agree to float32 rounding).

  python benchmarks/matmul_impl.py --dropout 0.1 --pairs 16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import step_speed  # noqa: E402

IMPLS = ("blas", "xla")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dropout", type=float, default=0.1)
  parser.add_argument("--pairs", type=int, default=16)
  parser.add_argument("--json", help="also write the result here")
  args, rest = parser.parse_known_args(argv)
  workload = step_speed.parse_args(rest)  # --batch-per-task, --length, --tiny, ...

  import jax
  from mtl_jax.kernels.blas import blas_provider
  from mtl_jax.training.nonfinite import NonFiniteCounter

  if blas_provider() is None:
    raise SystemExit("the native CPU kernels are unavailable: nothing to compare")
  steps = {}
  for impl in IMPLS:
    workload.matmul_impl = impl
    _, state, step, layout = step_speed.build_jax_step(workload, args.dropout)
    steps[impl] = {"state": state, "step": step, "layout": layout,
                   "counter": NonFiniteCounter(100)}
  vocab = step_speed.encoder_config(0.0, tiny=workload.tiny).vocab_size
  batches = step_speed.make_batches(4, workload.batch_per_task, workload.length, vocab=vocab)

  def one(impl: str, i: int) -> tuple[float, np.ndarray]:
    run = steps[impl]
    batch = run["layout"].put_batch(batches[i % len(batches)])
    start = time.perf_counter()
    run["state"], run["counter"].counts, metrics = run["step"](
        run["state"], run["counter"].counts, batch)
    jax.block_until_ready((run["state"], metrics))
    return time.perf_counter() - start, np.asarray(metrics["losses"])

  for impl in IMPLS:  # compile, then a warm step
    one(impl, 0)
    one(impl, 1)
  before = step_speed.cpu_times()
  seconds = {impl: [] for impl in IMPLS}
  for pair in range(args.pairs):
    for impl in (IMPLS if pair % 2 == 0 else IMPLS[::-1]):
      took, losses = one(impl, pair)
      seconds[impl].append(took)
      if pair == args.pairs - 1:
        seconds.setdefault("last_losses", {})[impl] = losses.tolist()
  steal = step_speed.steal_share(before, step_speed.cpu_times())
  ratios = [b / x for b, x in zip(seconds["blas"], seconds["xla"])]
  result = {"dropout": args.dropout, "blas": blas_provider(), "pairs": args.pairs,
            "blas_s": float(np.median(seconds["blas"])), "xla_s": float(np.median(seconds["xla"])),
            "ratios": ratios, "steal": steal, "last_losses": seconds["last_losses"]}
  print(f"dropout {args.dropout}, {args.pairs} pairs, BLAS {result['blas']}: "
        f"blas {result['blas_s']:.3f} s, xla {result['xla_s']:.3f} s (medians); "
        f"paired blas / xla min {min(ratios):.3f} median {np.median(ratios):.3f} "
        f"max {max(ratios):.3f}; {steal:.0%} of CPU time stolen")
  print(f"losses of the last pair: blas {result['last_losses']['blas']}, "
        f"xla {result['last_losses']['xla']}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()

"""The loop's step under two implementations of one encoder option, in one process.

The `step_speed.py` workload and step (`build_jax_step`: the guarded,
donated step `training/loop.py` runs), built twice in one process, once
per value of `--option` (`matmul_impl`, `norm_impl` or `attention_impl`;
`--a` and `--b` name the two values); then single steps of the two
alternate (who goes first alternates by pair), each timed to its result.
Pairing steps seconds apart cancels the drift of a shared machine's speed
that separate processes minutes apart do not. Prints the median step of
each and the paired ratio a / b (min, median, max), the share of CPU time
the hypervisor stole meanwhile, and the losses of the last pair (the same
function: they agree to float32 rounding).

  python benchmarks/impl_pairs.py --dropout 0.1 --pairs 16       # matmul_impl blas / xla
  python benchmarks/impl_pairs.py --option norm_impl --a cpu_kernel --b xla --dropout 0
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

# Each option's default pair: the native implementation against XLA's.
OPTIONS = {"matmul_impl": ("blas", "xla"), "norm_impl": ("cpu_kernel", "xla"),
           "attention_impl": ("cpu_kernel", "xla")}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--option", default="matmul_impl", choices=sorted(OPTIONS))
  parser.add_argument("--a", help="the first value (default: the option's native one)")
  parser.add_argument("--b", help="the second value (default: 'xla')")
  parser.add_argument("--dropout", type=float, default=0.1)
  parser.add_argument("--pairs", type=int, default=16)
  parser.add_argument("--json", help="also write the result here")
  args, rest = parser.parse_known_args(argv)
  workload = step_speed.parse_args(rest)  # --batch-per-task, --length, --tiny, ...
  impls = (args.a or OPTIONS[args.option][0], args.b or OPTIONS[args.option][1])
  if impls[0] == impls[1]:
    raise SystemExit(f"--a and --b are both {impls[0]!r}: nothing to compare")

  import jax
  from mtl_jax.kernels import native_kernels_available
  from mtl_jax.kernels.blas import blas_provider
  from mtl_jax.training.nonfinite import NonFiniteCounter

  if not native_kernels_available():
    raise SystemExit("the native CPU kernels are unavailable: nothing to compare")
  steps = {}
  for impl in impls:
    setattr(workload, args.option, impl)
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

  for impl in impls:  # compile, then a warm step
    one(impl, 0)
    one(impl, 1)
  before = step_speed.cpu_times()
  seconds = {impl: [] for impl in impls}
  last_losses = {}
  for pair in range(args.pairs):
    for impl in (impls if pair % 2 == 0 else impls[::-1]):
      took, losses = one(impl, pair)
      seconds[impl].append(took)
      if pair == args.pairs - 1:
        last_losses[impl] = losses.tolist()
  steal = step_speed.steal_share(before, step_speed.cpu_times())
  a, b = impls
  ratios = [x / y for x, y in zip(seconds[a], seconds[b])]
  result = {"option": args.option, "a": a, "b": b, "dropout": args.dropout,
            "blas": blas_provider(), "pairs": args.pairs,
            "a_s": float(np.median(seconds[a])), "b_s": float(np.median(seconds[b])),
            "ratios": ratios, "steal": steal, "last_losses": last_losses}
  print(f"{args.option}, dropout {args.dropout}, {args.pairs} pairs, BLAS {result['blas']}: "
        f"{a} {result['a_s']:.3f} s, {b} {result['b_s']:.3f} s (medians); "
        f"paired {a} / {b} min {min(ratios):.3f} median {np.median(ratios):.3f} "
        f"max {max(ratios):.3f}; {steal:.0%} of CPU time stolen")
  print(f"losses of the last pair: {a} {last_losses[a]}, {b} {last_losses[b]}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()

"""The step's matrix products under each of XLA's CPU GEMM libraries, and PyTorch's.

One encoder layer's twelve products from the `step_speed.py` workload (the
forward, input-gradient and weight-gradient products of the fused QKV,
attention output, intermediate and output projections; 4,096 token rows,
MiniLM-L6 widths), timed as one call per row:

  xla          XLA's default: dots go to YNNPACK where it takes them, else Eigen
  xla-onednn   --xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot
  xla-eigen    --xla_cpu_experimental_ynn_fusion_type=-dot,-individual_dot (Eigen for every dot)
  mtl-gemm     our BLAS custom call (EncoderConfig.matmul_impl="blas": MKL's sgemm where the
               mkl extra is installed, else SciPy's OpenBLAS), transposes read in place
  mtl-gemm-openblas  the same call with SciPy's OpenBLAS (MTL_JAX_BLAS=openblas)
  torch        PyTorch's aten (its CPU wheels use MKL / oneDNN), when torch is installed

Each row runs in a fresh process per round, pinned to the same CPUs with as
many threads as CPUs; the order alternates by round. For the XLA rows it also
counts which library ran the products (read from the compiled HLO's top-level
instructions). The statistic is the per-round paired ratio row / torch.

  python benchmarks/gemm_backends.py --rounds 4
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

FLAGS = {
    "xla": "",
    "xla-onednn": "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot",
    "xla-eigen": "--xla_cpu_experimental_ynn_fusion_type=-dot,-individual_dot",
}


def products(rows: int, d: int, ff: int) -> list[tuple[str, int, int, int]]:
  """(name, m, k, n) of one layer's forward products; each also has its two gradients."""
  return [("qkv", rows, d, 3 * d), ("attention output", rows, d, d),
          ("intermediate", rows, d, ff), ("output", rows, ff, d)]


def layer_flops(rows: int, d: int, ff: int) -> float:
  return sum(3 * 2 * m * k * n for _, m, k, n in products(rows, d, ff))


def _inputs(rows, d, ff):
  """Per product: the input x [m, k], the kernel w [k, n] and the output cotangent dy [m, n]."""
  rng = np.random.default_rng(0)
  return [tuple(rng.standard_normal(shape, np.float32) for shape in ((m, k), (k, n), (m, n)))
          for _, m, k, n in products(rows, d, ff)]


def _libraries(hlo_text: str) -> dict[str, int]:
  """How many top-level instructions of the entry computation each GEMM library runs."""
  entry = hlo_text[hlo_text.index("\nENTRY"):]
  entry = entry[:entry.index("\n}")]
  counts = {}
  for line in entry.splitlines():
    fused = re.search(r"%(ynn|xnn|onednn)_fusion\S* = .*kind=kCustom", line)
    if fused:
      counts[fused.group(1)] = counts.get(fused.group(1), 0) + 1
    elif re.search(r" dot\(", line):
      counts["eigen"] = counts.get("eigen", 0) + 1
  return counts


def _time(call, repeats: int) -> float:
  call()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def worker(row: str, args) -> dict:
  """Times the layer's products in this process: {seconds (median), libraries}."""
  arrays = _inputs(args.rows, args.d, args.ff)
  if row == "torch":
    import torch
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    tensors = [tuple(torch.from_numpy(a) for a in triple) for triple in arrays]

    def call():
      return [(x @ w, dy @ w.T, x.T @ dy) for x, w, dy in tensors]

    return {"seconds": _time(call, args.repeats), "libraries": {"aten": 3 * len(tensors)}}
  import jax

  if row.startswith("mtl-gemm"):
    from mtl_jax.encoders.dense import gemm
    from mtl_jax.kernels.blas import blas_provider
    provider = blas_provider()
    if provider is None:
      raise SystemExit("the native CPU kernels are unavailable: no mtl-gemm row")

    def layer(triples):
      return [(gemm(x, w), gemm(dy, w, trans_b=True), gemm(x, dy, trans_a=True))
              for x, w, dy in triples]
  else:
    def layer(triples):
      return [(x @ w, dy @ w.T, x.T @ dy) for x, w, dy in triples]

  device_arrays = jax.device_put(arrays)
  compiled = jax.jit(layer).lower(device_arrays).compile()
  libraries = ({f"mtl_gemm ({provider})": 3 * len(arrays)} if row.startswith("mtl-gemm")
               else _libraries(compiled.as_text()))
  return {"seconds": _time(lambda: jax.block_until_ready(compiled(device_arrays)), args.repeats),
          "libraries": libraries}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=10, help="timed calls per process")
  parser.add_argument("--rows", type=int, default=4096, help="token rows (2 tasks x 16 x 128)")
  parser.add_argument("--d", type=int, default=384)
  parser.add_argument("--ff", type=int, default=1536)
  parser.add_argument("--cpus", default=None, help="CPU list to pin every process to "
                      "(default: this process's)")
  parser.add_argument("--json", default=None, help="also write the results here")
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    print(json.dumps(worker(args.worker, args)))
    return

  cpus = (sorted(int(c) for c in args.cpus.split(",")) if args.cpus
          else sorted(os.sched_getaffinity(0)))
  rows = [*FLAGS, "mtl-gemm", "mtl-gemm-openblas"]
  try:
    import torch  # noqa: F401  (only whether it is there)
    rows.append("torch")
  except ImportError:
    print("torch is not installed: no PyTorch row, no paired ratio")
  flops = layer_flops(args.rows, args.d, args.ff)
  print(f"one layer's 12 products, {args.rows} rows, d {args.d}, ff {args.ff}: "
        f"{flops / 1e9:.1f} GFLOP; {len(cpus)} CPUs {cpus}")
  results = {row: [] for row in rows}
  for r in range(args.rounds):
    for row in (rows if r % 2 == 0 else rows[::-1]):
      # No persistent compilation cache in the workers: jaxlib cannot serialise oneDNN
      # fusion thunks ("ToProto is not implemented for thunk kind: onednn-fusion"), and a
      # worker that tried has crashed on exit (object_pool.h Check failed), seen under pytest,
      # whose conftest sets a cache directory. Timings do not depend on the cache.
      env = dict(os.environ, XLA_FLAGS=FLAGS.get(row, os.environ.get("XLA_FLAGS", "")),
                 JAX_ENABLE_COMPILATION_CACHE="false",
                 **({"MTL_JAX_BLAS": "openblas"} if row == "mtl-gemm-openblas" else {}))
      done = subprocess.run(
          ["taskset", "-c", ",".join(map(str, cpus)), sys.executable, __file__,
           "--worker", row, "--repeats", str(args.repeats), "--rows", str(args.rows),
           "--d", str(args.d), "--ff", str(args.ff)],
          capture_output=True, text=True, env=env, check=False)
      if done.returncode:
        raise SystemExit(f"{row} failed:\n{done.stderr[-3000:]}")
      results[row].append(json.loads(done.stdout.strip().splitlines()[-1]))
  for row in rows:
    seconds = [run["seconds"] for run in results[row]]
    line = (f"{row:11s} {np.median(seconds) * 1e3:7.1f} ms  "
            f"{flops / np.median(seconds) / 1e9:5.0f} GFLOP/s  rounds "
            + ", ".join(f"{s * 1e3:.1f}" for s in seconds)
            + f"  libraries {results[row][0]['libraries']}")
    if "torch" in results and row != "torch":
      ratios = [a["seconds"] / b["seconds"] for a, b in zip(results[row], results["torch"])]
      line += (f"  ratio to torch min {min(ratios):.3f} median {np.median(ratios):.3f} "
               f"max {max(ratios):.3f}")
    print(line)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"flops": flops, "cpus": cpus, "results": results}, f, indent=1)


if __name__ == "__main__":
  main()

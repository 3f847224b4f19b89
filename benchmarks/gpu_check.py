"""Everything to measure when a GPU is lent, in one run (issue 19, item 7).

* the train step against PyTorch (`step_speed.py`: ours vs eager and
  `torch.compile`, dropout 0.1 and 0) in float32 and in bfloat16;
* the balancing overhead at T = 2 and 8 (`balancing_overhead.py`);
* our step data-parallel over every local GPU against one GPU, at the same
  batch per device (`step_speed.py`'s JAX worker with `--mesh-data N`).

Writes `OUT/gpu_check.json` (every number) and `OUT/gpu_check.md` (the tables
for BENCHMARKS.md), plus each part's own JSON. `benchmarks/gpu_check.sh`
installs what it needs first. `--dry-run` runs every part on tiny shapes on
this machine's CPU (what CI checks), so the script cannot rot unseen.

  bash benchmarks/gpu_check.sh gpu_out          # on the GPU machine, under 8 minutes
  python benchmarks/gpu_check.py --out OUT --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# (full run, dry run) arguments of each part.
STEP = (["--device", "cuda", "--batch-per-task", "32", "--steps", "20", "--rounds", "2"],
        ["--device", "cpu", "--tiny", "--batch-per-task", "2", "--length", "16", "--steps",
         "1", "--rounds", "2", "--threads", "1", "--ours-only"])
BALANCING = (["--tasks", "2", "8", "--rounds", "2", "--steps", "5"],
             ["--tasks", "2", "--hidden", "32", "--layers", "1", "--heads", "2", "--ffn", "64",
              "--vocab", "100", "--seq", "16", "--batch", "8", "--methods", "pcgrad",
              "--modes", "full", "--rounds", "1", "--steps", "1"])
SHARDED = (["--batch-per-task", "32", "--steps", "20"],
           ["--tiny", "--batch-per-task", "2", "--length", "16", "--steps", "1",
            "--threads", "1"])


def _run(command: list[str], log) -> None:
  print("$ " + " ".join(command), flush=True)
  start = time.perf_counter()
  done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True)
  log.write(done.stdout)
  print(done.stdout[-2000:], flush=True)
  if done.returncode:
    raise SystemExit(f"failed ({done.returncode}) after {time.perf_counter() - start:.0f} s: "
                     + " ".join(command))


def _local_devices(dry_run: bool) -> int:
  if dry_run:
    return 1
  import jax
  return jax.local_device_count()


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--dry-run", action="store_true",
                      help="tiny shapes on this machine's CPU (no GPU, no PyTorch needed)")
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  pick = 1 if args.dry_run else 0
  python = sys.executable
  report: dict = {"dry_run": args.dry_run, "step": {}, "sharded": {}}
  with open(os.path.join(args.out, "gpu_check.log"), "w") as log:
    for dtype in ("float32", "bfloat16"):
      out = os.path.join(args.out, f"step_{dtype}.json")
      _run([python, os.path.join(HERE, "step_speed.py"), *STEP[pick], "--dtype", dtype,
            "--json", out], log)
      with open(out) as f:
        report["step"][dtype] = json.load(f)
    out = os.path.join(args.out, "balancing.json")
    _run([python, os.path.join(HERE, "balancing_overhead.py"), *BALANCING[pick],
          "--json", out], log)
    with open(out) as f:
      report["balancing"] = json.load(f)
    devices = _local_devices(args.dry_run)
    for count in sorted({1, devices}):
      out = os.path.join(args.out, f"sharded_{count}.json")
      # Ours alone (the worker), the global batch growing with the devices.
      per_task = str(int(SHARDED[pick][SHARDED[pick].index("--batch-per-task") + 1]) * count)
      options = list(SHARDED[pick])
      options[options.index("--batch-per-task") + 1] = per_task
      _run([python, os.path.join(HERE, "step_speed.py"), "--worker", "jax", "--out", out,
            "--mesh-data", str(count), "--dropout", "0.1", *options], log)
      with open(out) as f:
        report["sharded"][count] = json.load(f)
  with open(os.path.join(args.out, "gpu_check.json"), "w") as f:
    json.dump(report, f, indent=1)
  markdown = format_markdown(report)
  with open(os.path.join(args.out, "gpu_check.md"), "w") as f:
    f.write(markdown)
  print(markdown)
  return report


def format_markdown(report: dict) -> str:
  """The tables of `gpu_check.md`."""
  lines = ["| dtype | row | step (ms, per round) | ratio ours / row (median) |",
           "| --- | --- | --- | --- |"]
  for dtype, step in report["step"].items():
    for name, row in step["rows"].items():
      mode = name.split(" dropout ")
      key = f"{mode[0].strip()} dropout {mode[1]}" if len(mode) == 2 else name
      ratio = step["ratios"].get(key)
      lines.append(f"| {dtype} | {name} | "
                   + ", ".join(f"{1e3 * t:.1f}" for t in row["step_s"])
                   + f" | {'' if ratio is None else f'{ratio:.3f}'} |")
  lines += ["", "| T | method | mode | step ratio to equal | FLOPs ratio |",
            "| --- | --- | --- | --- | --- |"]
  for row in report["balancing"]:
    ratio = row.get("ratio")
    flops = row.get("flops_ratio")
    lines.append(f"| {row['tasks']} | {row['method']} | {row['mode']} | "
                 f"{'' if ratio is None else f'{ratio:.3f}'} | "
                 f"{'' if flops is None else f'{flops:.3f}'} |")
  lines += ["", "| devices (data parallel) | step (ms) | examples per second |",
            "| --- | --- | --- |"]
  for count, result in sorted(report["sharded"].items(), key=lambda item: int(item[0])):
    throughput = result["examples_per_step"] / result["step_s"]
    lines.append(f"| {count} | {1e3 * result['step_s']:.1f} | {throughput:.0f} |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  main()

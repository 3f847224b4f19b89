"""Train-step speed: the step our training loop runs against PyTorch at its best.

The workload is the issue's: a MiniLM-L6-shaped encoder (6 layers, hidden
384, 12 heads, FFN 1536, vocab 30,522), two tasks (sequence classification +
token tagging, equal weights) whose batches go through the encoder together,
AdamW with clipping and decay mask, sequences of 128 tokens.

Rows, each at dropout 0.1 and at 0:
* ours: the step `training/loop.py` runs (`training/sharded.py`'s
  `jit_loop_step`: keyed by the step on device, non-finite updates skipped
  and counted on device, state donated and laid out on the mesh), fed by the
  loop's `Prefetcher`; timed over N steps with one wait at the end, as the
  loop runs (it reads nothing from the device between logs);
* PyTorch eager (`torch_reference.py`: fused QKV, SDPA, fused AdamW,
  `foreach` clipping) and the same model under `torch.compile` (inductor,
  default mode; its compile time reported apart).

Every row runs in a fresh process per round, on the same pinned CPUs with
the same thread count, rounds alternating who goes first (an even number of
rounds). Peak memory is the kernel's high-water mark (VmHWM, reset before the
timed steps by /proc/self/clear_refs), read after them: no sampler thread
competes with either framework. For each PyTorch row the statistic is the
paired ratio ours / theirs within each round (same dropout), with its min,
median and max over rounds. The reference's losses must equal ours within
1e-4 on the first steps (dropout off). The last two lines printed are
exactly `ratio eager <x>` and `ratio compile <x>`: the medians of the paired
ratios at dropout 0.1.

  python benchmarks/step_speed.py                    # the issue's setting, 4 rounds
  python benchmarks/step_speed.py --batch-per-task 2 --length 32 --steps 2 --rounds 2  # a dry run
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES, NUM_TAGS = 4, 9
# The first steps' losses, ours against the reference's (bfloat16: autocast's
# choice of ops differs from ours, so only the same function to bf16 precision).
LOSS_TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2}
# Stolen CPU time (a shared virtual machine's other guests) above which a run is flagged.
STEAL_QUIET = 0.05


def encoder_config(dropout: float, attention_impl: str = "auto", dtype: str = "float32",
                   tiny: bool = False, matmul_impl: str = "auto", norm_impl: str = "auto"):
  """MiniLM-L6's shape (all-MiniLM-L6-v2); `tiny`: a 2-layer width-64 one (dry runs)."""
  from mtl_jax.encoders import EncoderConfig
  shape = (dict(vocab_size=1000, hidden_size=64, num_layers=2, num_heads=4,
                intermediate_size=256) if tiny else
           dict(vocab_size=30522, hidden_size=384, num_layers=6, num_heads=12,
                intermediate_size=1536))
  return EncoderConfig(**shape, hidden_dropout=dropout, attention_dropout=dropout,
                       attention_impl=attention_impl, matmul_impl=matmul_impl,
                       norm_impl=norm_impl, dtype=dtype)


def optimizer_config() -> dict:
  from mtl_jax.config import default_config
  return default_config().optimizer.to_dict()


def make_batches(count: int, batch_per_task: int, length: int, seed: int = 0,
                 vocab: int = 30522):
  """Synthetic batches of the two tasks: random ids, real lengths in [length/2, length]."""
  rng = np.random.default_rng(seed)
  batches = []
  for _ in range(count):
    batch = {}
    for task in ("ner", "news"):
      lengths = rng.integers(length // 2, length + 1, batch_per_task)
      mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
      if task == "ner":
        labels = np.where(mask == 1, rng.integers(0, NUM_TAGS, mask.shape), -100)
      else:
        labels = rng.integers(0, NUM_CLASSES, batch_per_task)
      batch[task] = {
          "input_ids": (rng.integers(1, vocab, mask.shape) * mask).astype(np.int32),
          "token_type_ids": np.zeros(mask.shape, np.int32),
          "attention_mask": mask, "labels": labels.astype(np.int32)}
    batches.append(batch)
  return batches


def matmul_flops(config, rows: int, length: int) -> float:
  """Matrix-product FLOPs of one train step (forward + 2x for backward)."""
  d, f = config.hidden_size, config.intermediate_size
  tokens = rows * length
  per_layer = tokens * 2 * (4 * d * d + 2 * d * f) + rows * 2 * 2 * length * length * d
  heads = (rows // 2) * length * 2 * d * NUM_TAGS + (rows // 2) * 2 * d * (d + NUM_CLASSES)
  return 3.0 * (config.num_layers * per_layer + heads)


def _status_kib(field: str) -> int:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1])
  raise KeyError(field)


def reset_peak_memory() -> int:
  """Resets the kernel's peak-RSS mark to the current RSS; returns that RSS in bytes."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")  # Linux: VmHWM := VmRSS
  except OSError:
    pass  # not Linux or not allowed: the peak then counts from the process start
  return _status_kib("VmRSS") * 1024


def peak_memory() -> int:
  """The kernel's peak RSS of this process since the last reset, in bytes."""
  return _status_kib("VmHWM") * 1024


def cpu_times() -> list[int] | None:
  """The machine's CPU time counters (/proc/stat's first line), or None off Linux."""
  try:
    with open("/proc/stat") as f:
      return [int(v) for v in f.readline().split()[1:]]
  except (OSError, ValueError):
    return None


def steal_share(before: list[int] | None, after: list[int] | None) -> float | None:
  """The share of CPU time the hypervisor took for other guests between two `cpu_times()`.

  On a shared virtual machine, stolen time slows every row alike only if it
  is steady; above a few percent, a round's times say more about the host
  than about either framework.
  """
  if not before or not after or len(before) < 8:
    return None
  total = sum(after[:8]) - sum(before[:8])  # user ... steal; guest time is inside user
  return (after[7] - before[7]) / total if total > 0 else 0.0


def _pin_threads(threads: int) -> None:
  """Both frameworks size their thread pools from the CPUs they may use."""
  cpus = sorted(os.sched_getaffinity(0))[:threads]
  os.sched_setaffinity(0, cpus)


# ---------------------------------------------------------------- JAX worker


def jax_parts(args, dropout: float) -> types.SimpleNamespace:
  """Our model and step function with the state's laid-out shapes, as `training/run.py` makes them.

  Args:
    args: this script's arguments (shape, attention and matmul impls, dtype, mesh, schedule
      length).
    dropout: the encoder's and heads' dropout rate.

  Returns:
    A namespace: `model`, `train_step` (`make_train_step`'s, not jitted), `init` (the
    step-0 state), `abstract` (its shapes with their shardings) and `layout`.
  """
  import jax
  from mtl_jax import sharding
  from mtl_jax import weighting as weighting_lib
  from mtl_jax.sharing import HardSharingModel, TaskHead
  from mtl_jax.tasks.kinds import Classification, Tagging
  from mtl_jax.training import TrainState, make_train_step, make_optimizer

  layout = sharding.Layout(sharding.make_mesh({"data": args.mesh_data}))
  heads = [TaskHead("ner", Tagging(), NUM_TAGS, {"dropout": dropout}),
           TaskHead("news", Classification(), NUM_CLASSES, {"dropout": dropout})]
  model = HardSharingModel(
      encoder_config(dropout, args.attention_impl, args.dtype, args.tiny,
                     args.matmul_impl, args.norm_impl), heads)
  optimizer, _ = make_optimizer(optimizer_config(), args.total_steps)
  weighting = weighting_lib.from_spec("equal", num_tasks=2)

  def init(pretrained=None):
    del pretrained
    init_rng, dropout_rng = jax.random.split(jax.random.PRNGKey(0))
    return TrainState.create(model.init(init_rng), optimizer, weighting.init(2), dropout_rng)

  shapes = jax.eval_shape(init)
  shardings = layout.state_shardings(shapes, model.logical_axes())
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          shapes, shardings)
  return types.SimpleNamespace(model=model, train_step=make_train_step(model, weighting, optimizer),
                               init=init, abstract=abstract, layout=layout)


def build_jax_step(args, dropout: float):
  """Our model, its step-0 state, the loop's step and the layout.

  Args:
    args: this script's arguments (see `jax_parts`).
    dropout: the encoder's and heads' dropout rate.

  Returns:
    (model, state, step, layout): `step(state, counts, batch) -> (state, counts, metrics)`
    is `training/sharded.py`'s `jit_loop_step`, the function the training loop calls.
  """
  from mtl_jax.training.sharded import create_state, jit_loop_step

  parts = jax_parts(args, dropout)
  step = jit_loop_step(parts.train_step, parts.abstract, parts.layout,
                       max_nonfinite_in_a_row=100)
  return (parts.model, create_state(parts.init, parts.abstract, parts.layout), step,
          parts.layout)


def jax_worker(args) -> dict:
  import jax
  import jax.numpy as jnp
  from mtl_jax.training.nonfinite import NonFiniteCounter
  from mtl_jax.training.prefetch import Prefetcher

  config = encoder_config(0.0, args.attention_impl, args.dtype, args.tiny, args.matmul_impl,
                          args.norm_impl)
  batches = make_batches(args.steps + 2, args.batch_per_task, args.length,
                         vocab=config.vocab_size)
  from mtl_jax.encoders.attention import resolve_impl
  from mtl_jax.encoders.dense import resolve_matmul_impl
  from mtl_jax.encoders.layer_norm import resolve_norm_impl
  from mtl_jax.kernels.blas import blas_provider
  result = {"framework": "jax", "jax": jax.__version__, "device": jax.devices()[0].device_kind,
            "examples_per_step": 2 * args.batch_per_task,
            "attention": resolve_impl(args.attention_impl, jnp.dtype(args.dtype)),
            "matmul": resolve_matmul_impl(args.matmul_impl, jnp.dtype(args.dtype)),
            "norm": resolve_norm_impl(args.norm_impl, jnp.dtype(args.dtype)),
            "blas": blas_provider()}
  if args.export:
    from mtl_jax import export_pretrained
    model, state, step, layout = build_jax_step(args, 0.0)
    params = jax.device_get(state.params)
    export_pretrained(os.path.join(args.export, "encoder"), model.encoder_config,
                      params["encoder"])
    flat = {f"{task}/{module}/{name}": value
            for task, modules in params["heads"].items()
            for module, leaves in modules.items() for name, value in leaves.items()}
    np.savez(os.path.join(args.export, "heads.npz"), **flat)
    counter, losses = NonFiniteCounter(100), []
    for i in range(args.check_steps):
      state, counter.counts, metrics = step(state, counter.counts, layout.put_batch(batches[i]))
      losses.append(np.asarray(metrics["losses"]).tolist())
    result["check_losses"] = losses

  _, state, step, layout = build_jax_step(args, args.dropout)
  counter = NonFiniteCounter(100)
  with Prefetcher(iter(batches), put=layout.put_batch) as prefetched:
    start = time.perf_counter()
    state, counter.counts, metrics = step(state, counter.counts, next(prefetched))
    jax.block_until_ready(metrics)
    result["compile_s"] = time.perf_counter() - start  # compile + the first step
    state, counter.counts, metrics = step(state, counter.counts, next(prefetched))
    jax.block_until_ready(metrics)  # a warm step: buffers and thread pools settled
    before = reset_peak_memory()
    times = cpu_times()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for batch in prefetched:  # the loop's way: no host read until the end
      state, counter.counts, metrics = step(state, counter.counts, batch)
    jax.block_until_ready((state, metrics))
    elapsed = time.perf_counter() - start
  counter.check()
  # Minor page faults per timed step: fresh pages of the step's temporaries (README, "Speed
  # on CPU": huge pages spare most of them).
  faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.steps
  result.update(step_s=elapsed / args.steps, steal=steal_share(times, cpu_times()),
                page_faults=faults, rss_before=before, rss_peak=peak_memory(),
                final_losses=np.asarray(metrics["losses"]).tolist())
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:  # accelerators: the device's own high-water mark
    result["device_peak"] = stats["peak_bytes_in_use"]

  rows, d, f = 2 * args.batch_per_task * args.length, config.hidden_size, config.intermediate_size
  a = jnp.ones((rows, d), args.dtype)
  b = jnp.ones((d, f), args.dtype)
  gemm = jax.jit(lambda a, b: a @ b)
  result["gemm_gflops"] = _gemm_rate(lambda: jax.block_until_ready(gemm(a, b)),
                                     2 * rows * d * f)
  return result


def _gemm_rate(run, flops: float, repeats: int = 5) -> float:
  run()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    run()
    best = min(best, time.perf_counter() - start)
  return flops / best / 1e9


# ------------------------------------------------------------ PyTorch worker


def torch_worker(args) -> dict:
  import torch
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import torch_reference as ref

  import contextlib
  config = encoder_config(args.dropout, tiny=args.tiny)
  opt = optimizer_config()
  device = torch.device(args.device)
  heads = dict(np.load(os.path.join(args.weights, "heads.npz")))
  batches = make_batches(args.steps + 2, args.batch_per_task, args.length,
                         vocab=config.vocab_size)
  batches = [{task: {k: (torch.from_numpy(v).long() if k == "labels" else
                         torch.from_numpy(v)).to(device)
                     for k, v in arrays.items()}
              for task, arrays in batch.items()} for batch in batches]

  def synchronize():
    if device.type == "cuda":
      torch.cuda.synchronize()

  def learning_rate(step):
    # optax.linear_schedule(peak, 0, total_steps) with no warm-up.
    return opt["learning_rate"] * (1.0 - min(step, args.total_steps) / args.total_steps)

  def build(dropout):
    model = ref.MultiTaskBert(config, NUM_CLASSES, NUM_TAGS, dropout)
    ref.load_weights(model, os.path.join(args.weights, "encoder"), heads)
    model.to(device).train()
    optimizer = ref.make_optimizer(model, opt)
    return (torch.compile(model) if args.compile else model), optimizer

  def step(model, optimizer, s):
    # bfloat16: autocast, the PyTorch way (params and optimizer stay float32, as ours).
    with (torch.autocast(device.type, dtype=torch.bfloat16) if args.dtype == "bfloat16"
          else contextlib.nullcontext()):
      return ref.train_step(model, optimizer, batches[s], learning_rate(s), opt["clip_norm"])

  result = {"framework": "torch", "torch": torch.__version__, "compile": args.compile,
            "threads": torch.get_num_threads(), "device": args.device}
  if args.check_steps:
    model, optimizer = build(0.0)
    result["check_losses"] = [step(model, optimizer, i).tolist()
                              for i in range(args.check_steps)]

  model, optimizer = build(args.dropout)
  start = time.perf_counter()
  step(model, optimizer, 0)
  synchronize()
  result["compile_s"] = (time.perf_counter() - start) if args.compile else 0.0
  step(model, optimizer, 1)  # a warm step (compile: also the backward's first run)
  synchronize()
  before = reset_peak_memory()
  if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
  times = cpu_times()
  start = time.perf_counter()
  for s in range(2, len(batches)):
    losses = step(model, optimizer, s)
  synchronize()
  elapsed = time.perf_counter() - start
  result.update(step_s=elapsed / args.steps, steal=steal_share(times, cpu_times()),
                rss_before=before, rss_peak=peak_memory(), final_losses=losses.float().tolist())
  if device.type == "cuda":
    result["device_peak"] = torch.cuda.max_memory_allocated()
  rows, d, f = 2 * args.batch_per_task * args.length, config.hidden_size, config.intermediate_size
  dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
  a = torch.ones(rows, d, dtype=dtype, device=device)
  b = torch.ones(d, f, dtype=dtype, device=device)

  def gemm():
    a @ b
    synchronize()

  result["gemm_gflops"] = _gemm_rate(gemm, 2 * rows * d * f)
  return result


# ---------------------------------------------------------------- the driver


# Each row: (framework, PyTorch mode or None). Ours first within a framework-first round.
OURS, EAGER, COMPILE = ("jax", None), ("torch", "eager"), ("torch", "compile")
DROPOUTS = (0.1, 0.0)


def _worker_command(args, row, dropout, out, weights, export, check_steps):
  framework, mode = row
  command = [sys.executable, os.path.abspath(__file__), "--worker", framework,
             "--out", out, "--batch-per-task", str(args.batch_per_task),
             "--length", str(args.length), "--steps", str(args.steps),
             "--threads", str(args.threads), "--dropout", str(dropout),
             "--attention-impl", args.attention_impl, "--matmul-impl", args.matmul_impl,
             "--norm-impl", args.norm_impl,
             "--dtype", args.dtype,
             "--device", args.device, "--total-steps", str(args.total_steps),
             "--check-steps", str(check_steps)] + (["--tiny"] if args.tiny else [])
  if export:
    command += ["--export", weights]
  if framework == "torch":
    command += ["--weights", weights] + (["--compile"] if mode == "compile" else [])
  return command


def _run_worker(command) -> dict:
  out = command[command.index("--out") + 1]
  completed = subprocess.run(command, cwd=REPO)
  if completed.returncode:
    raise SystemExit(f"worker failed ({completed.returncode}): {' '.join(command)}")
  with open(out) as f:
    return json.load(f)


def _label(row, dropout) -> str:
  return f"{'ours' if row == OURS else row[1]:7s} dropout {dropout:g}"


def main(args) -> dict:
  if args.rounds % 2:
    raise SystemExit(f"--rounds must be even (who goes first alternates), got {args.rounds}")
  has_torch = not args.ours_only and importlib.util.find_spec("torch") is not None
  if args.ours_only:
    print("--ours-only: timing ours alone, no ratio.")
  elif not has_torch:
    print("PyTorch is not installed: timing ours only, no ratio "
          "(pip install torch for the side-by-side comparison).")
  config = encoder_config(0.1, tiny=args.tiny)
  rows = 2 * args.batch_per_task
  flops = matmul_flops(config, rows, args.length)
  print(f"workload: {rows} sequences x {args.length} tokens ({args.batch_per_task} per task), "
        f"{'a tiny' if args.tiny else 'MiniLM-L6'} shape, {args.dtype} on {args.device}"
        + (f", {args.threads} threads" if args.device == "cpu" else "")
        + f", {args.steps} timed steps per process; "
        f"{flops / 1e9:.1f} GFLOP of matrix products per step")
  theirs = [EAGER, COMPILE] if has_torch else []
  results = {(row, d): [] for row in [OURS, *theirs] for d in DROPOUTS}
  with tempfile.TemporaryDirectory() as tmp:
    for r in range(args.rounds):
      order = [OURS, *theirs] if r % 2 == 0 else [*theirs, OURS]
      for row in order:
        for dropout in DROPOUTS:
          # The first process of each row also runs the loss check (its own
          # dropout-free model); ours exports the weights the reference loads.
          first = r == 0 and dropout == DROPOUTS[0]
          command = _worker_command(args, row, dropout, os.path.join(tmp, "out.json"), tmp,
                                    export=first and row == OURS,
                                    check_steps=args.check_steps if first else 0)
          result = _run_worker(command)
          results[row, dropout].append(result)
          print(f"round {r} {_label(row, dropout)}: {result['step_s'] * 1e3:.1f} ms/step, "
                f"compile {result['compile_s']:.1f} s, "
                + (f"attention {result['attention']}, " if "attention" in result else "")
                + f"GEMM {result['gemm_gflops']:.0f} GFLOP/s"
                + (f", steal {result['steal']:.0%}" if result.get("steal") is not None else ""),
                flush=True)
  summary = _report(results, flops, theirs, LOSS_TOLERANCE[args.dtype])
  if args.json:
    rows_out = {" ".join(_label(row, d).split()): {
        "step_s": [r["step_s"] for r in runs], "compile_s": [r["compile_s"] for r in runs],
        "steal": [r.get("steal") for r in runs],
        "rss_peak": max(r["rss_peak"] for r in runs),
        "device_peak": max((r.get("device_peak", 0) for r in runs), default=0)}
        for (row, d), runs in results.items()}
    with open(args.json, "w") as f:
      json.dump({"device": args.device, "dtype": args.dtype, "rows": rows_out,
                 "ratios": {f"{mode} dropout {d:g}": value
                            for (mode, d), value in summary.items()}}, f, indent=2)
  return summary


def _report(results, flops, theirs, tolerance: float) -> dict:
  print()
  summary = {}
  for (row, dropout), runs in results.items():
    step = float(np.median([r["step_s"] for r in runs]))
    gemm = float(np.median([r["gemm_gflops"] for r in runs]))
    peak = max(r["rss_peak"] for r in runs) / 2**20
    grown = max(r["rss_peak"] - r["rss_before"] for r in runs) / 2**20
    print(f"{_label(row, dropout)}: step {step * 1e3:.1f} ms (median of {len(runs)} rounds), "
          f"compile {np.median([r['compile_s'] for r in runs]):.1f} s, GEMM {gemm:.0f} "
          f"GFLOP/s, matmul share {flops / (gemm * 1e9) / step:.2f}, peak RSS {peak:.0f} MiB "
          f"(+{grown:.0f} MiB during the steps)")
  steals = [r["steal"] for runs in results.values() for r in runs if r.get("steal") is not None]
  if steals:
    print(f"CPU time stolen by the hypervisor during the timed steps: median "
          f"{np.median(steals):.1%}, max {max(steals):.1%}"
          + (f" (above {STEAL_QUIET:.0%}: the machine was shared; rerun before reading the "
             "ratios)" if max(steals) > STEAL_QUIET else ""))
  if not theirs:
    return summary
  ours_check = results[OURS, DROPOUTS[0]][0]["check_losses"]
  for row in theirs:
    reference = results[row, DROPOUTS[0]][0]["check_losses"]
    difference = float(np.max(np.abs(np.asarray(ours_check) - np.asarray(reference))))
    print(f"losses on the first {len(ours_check)} steps, dropout off (ner, news), "
          f"{row[1]}: max |ours - reference| {difference:.2e}")
    if not difference <= tolerance:
      raise SystemExit(f"{row[1]}: losses differ from ours by {difference:.2e} > "
                       f"{tolerance}")
  print()
  for row in theirs:
    for dropout in DROPOUTS:
      paired = [ours["step_s"] / their["step_s"] for ours, their in
                zip(results[OURS, dropout], results[row, dropout])]
      summary[row[1], dropout] = float(np.median(paired))
      print(f"paired ratio ours / {row[1]} at dropout {dropout:g}: min {min(paired):.3f}, "
            f"median {np.median(paired):.3f}, max {max(paired):.3f} (rounds: "
            + ", ".join(f"{p:.3f}" for p in paired) + ")")
  for row in theirs:
    print(f"ratio {row[1]} {summary[row[1], DROPOUTS[0]]:.3f}")
  return summary


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch-per-task", type=int, default=16,
                      help="sequences per task and step (the encoder sees twice this)")
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--steps", type=int, default=10,
                      help="timed steps per process (after a compile and a warm step)")
  parser.add_argument("--rounds", type=int, default=4, help="an even number")
  parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
  parser.add_argument("--attention-impl", default="auto", choices=("auto", "xla", "cpu_kernel"),
                      help="our encoder's attention core (EncoderConfig.attention_impl)")
  parser.add_argument("--matmul-impl", default="auto", choices=("auto", "xla", "blas"),
                      help="our encoder's dense products (EncoderConfig.matmul_impl)")
  parser.add_argument("--norm-impl", default="auto", choices=("auto", "xla", "cpu_kernel"),
                      help="our encoder's layer norms (EncoderConfig.norm_impl)")
  parser.add_argument("--check-steps", type=int, default=3,
                      help="first steps whose losses must match the reference")
  parser.add_argument("--total-steps", type=int, default=1000,
                      help="run length for the learning-rate schedule")
  parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                      help="PyTorch's device (ours runs on JAX's default backend)")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                      help="activations (params and optimizer stay float32)")
  parser.add_argument("--tiny", action="store_true", help="a 2-layer width-64 encoder")
  parser.add_argument("--json", help="also write the rows and ratios here")
  parser.add_argument("--ours-only", action="store_true", help="no PyTorch rows")
  parser.add_argument("--mesh-data", type=int, default=1,
                      help="ours: devices the batch is split over (data parallel)")
  parser.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
  parser.add_argument("--dropout", type=float, default=0.1, help=argparse.SUPPRESS)
  parser.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--out", help=argparse.SUPPRESS)
  parser.add_argument("--export", help=argparse.SUPPRESS)
  parser.add_argument("--weights", help=argparse.SUPPRESS)
  return parser.parse_args(argv)


if __name__ == "__main__":
  sys.path.insert(0, REPO)
  arguments = parse_args()
  if arguments.worker:
    if arguments.device == "cpu":
      _pin_threads(arguments.threads)
    worker = jax_worker if arguments.worker == "jax" else torch_worker
    output = worker(arguments)
    with open(arguments.out, "w") as f:
      json.dump(output, f)
  else:
    main(arguments)

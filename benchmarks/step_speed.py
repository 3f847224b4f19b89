"""Train-step speed: our jitted `train_step` against PyTorch eager, side by side.

The workload is the issue's: a MiniLM-L6-shaped encoder (6 layers, hidden
384, 12 heads, FFN 1536, vocab 30,522), two tasks (sequence classification +
token tagging, equal weights) whose batches go through the encoder together,
AdamW with clipping and decay mask, dropout 0.1, sequences of 128 tokens.

Each framework runs in its own fresh process, alternating (JAX, PyTorch, then
PyTorch, JAX, ...) for several rounds on the same CPUs with the same thread
count, so load from other users of the machine hits both alike. Ours is the
real step: `HardSharingModel` + `make_optimizer` + `make_train_step`, jitted
with the state donated as `training/loop.py` does. The PyTorch reference
(`torch_reference.py`) loads our exact initial weights (exported with
`mtl_jax.export_pretrained`), and its losses must equal ours within 1e-4 on
the first steps (dropout off for that check; on for the timing).

Prints per-round step times, compile time, peak host memory, the matmul share
of the step (matmul FLOPs / the GEMM rate measured in the same process, over
the step time) and a line `ratio <ours / PyTorch>` (medians).

  python benchmarks/step_speed.py                    # the issue's setting
  python benchmarks/step_speed.py --batch-per-task 4 --rounds 2   # a quick look
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES, NUM_TAGS = 4, 9
LOSS_TOLERANCE = 1e-4


def encoder_config(dropout: float, attention_impl: str = "auto"):
  """MiniLM-L6's shape (all-MiniLM-L6-v2)."""
  from mtl_jax.encoders import EncoderConfig
  return EncoderConfig(vocab_size=30522, hidden_size=384, num_layers=6, num_heads=12,
                       intermediate_size=1536, hidden_dropout=dropout,
                       attention_dropout=dropout, attention_impl=attention_impl)


def optimizer_config() -> dict:
  from mtl_jax.config import default_config
  return default_config().optimizer.to_dict()


def make_batches(count: int, batch_per_task: int, length: int, seed: int = 0):
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
          "input_ids": (rng.integers(1, 30522, mask.shape) * mask).astype(np.int32),
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


class PeakMemory:
  """Samples this process's resident memory in a thread; `peak` in bytes."""

  def __init__(self, interval: float = 0.005):
    self.interval, self.peak, self._stop = interval, 0, threading.Event()
    self._page = os.sysconf("SC_PAGE_SIZE")

  def current(self) -> int:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * self._page

  def __enter__(self):
    self.peak = self.current()
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()
    return self

  def _run(self):
    while not self._stop.wait(self.interval):
      self.peak = max(self.peak, self.current())

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()


def _pin_threads(threads: int) -> None:
  """Both frameworks size their thread pools from the CPUs they may use."""
  cpus = sorted(os.sched_getaffinity(0))[:threads]
  os.sched_setaffinity(0, cpus)


# ---------------------------------------------------------------- JAX worker


def jax_worker(args) -> dict:
  import jax
  import jax.numpy as jnp
  from mtl_jax import weighting as weighting_lib
  from mtl_jax.sharing import HardSharingModel, TaskHead
  from mtl_jax.tasks.kinds import Classification, Tagging
  from mtl_jax.training import TrainState, make_train_step, make_optimizer

  kinds = {"ner": Tagging(), "news": Classification()}

  def build(dropout):
    heads = [TaskHead("ner", kinds["ner"], NUM_TAGS, {"dropout": dropout}),
             TaskHead("news", kinds["news"], NUM_CLASSES, {"dropout": dropout})]
    model = HardSharingModel(encoder_config(dropout, args.attention_impl), heads)
    optimizer, _ = make_optimizer(optimizer_config(), args.total_steps)
    weighting = weighting_lib.from_spec("equal", num_tasks=2)
    step = jax.jit(make_train_step(model, weighting, optimizer), donate_argnums=0)
    return model, optimizer, weighting, step

  def initial_state(model, optimizer, weighting):
    init_rng, dropout_rng = jax.random.split(jax.random.PRNGKey(0))
    return TrainState.create(model.init(init_rng), optimizer, weighting.init(2),
                             dropout_rng)

  batches = make_batches(args.steps + 1, args.batch_per_task, args.length)
  from mtl_jax.encoders.attention import resolve_impl
  result = {"framework": "jax", "jax": jax.__version__,
            "attention": resolve_impl(args.attention_impl, jnp.float32)}
  if args.export:
    from mtl_jax import export_pretrained
    model, optimizer, weighting, step = build(0.0)
    state = initial_state(model, optimizer, weighting)
    params = jax.device_get(state.params)
    export_pretrained(os.path.join(args.export, "encoder"), model.encoder_config,
                      params["encoder"])
    flat = {f"{task}/{module}/{name}": value
            for task, modules in params["heads"].items()
            for module, leaves in modules.items() for name, value in leaves.items()}
    np.savez(os.path.join(args.export, "heads.npz"), **flat)
    losses = []
    for i in range(args.check_steps):
      state, metrics = step(state, batches[i], jax.random.PRNGKey(i))
      losses.append(np.asarray(metrics["losses"]).tolist())
    result["check_losses"] = losses

  model, optimizer, weighting, step = build(args.dropout)
  state = initial_state(model, optimizer, weighting)
  dropout_rng = np.asarray(jax.device_get(state.rng))
  keys = [jax.random.fold_in(dropout_rng, s) for s in range(len(batches))]
  start = time.perf_counter()
  compiled = step.lower(state, batches[0], keys[0]).compile()
  result["compile_s"] = time.perf_counter() - start
  state, metrics = compiled(state, batches[0], keys[0])
  jax.block_until_ready(metrics)
  times = []
  with PeakMemory() as memory:
    before = memory.current()
    for s in range(1, len(batches)):
      start = time.perf_counter()
      state, metrics = compiled(state, batches[s], keys[s])
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - start)
  result.update(step_s=times, rss_before=before, rss_peak=memory.peak,
                final_losses=np.asarray(metrics["losses"]).tolist())

  rows = 2 * args.batch_per_task * args.length
  a = jnp.ones((rows, 384), jnp.float32)
  b = jnp.ones((384, 1536), jnp.float32)
  gemm = jax.jit(lambda a, b: a @ b)
  result["gemm_gflops"] = _gemm_rate(lambda: jax.block_until_ready(gemm(a, b)),
                                     2 * rows * 384 * 1536)
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

  config, opt = encoder_config(args.dropout), optimizer_config()
  heads = dict(np.load(os.path.join(args.weights, "heads.npz")))
  batches = make_batches(args.steps + 1, args.batch_per_task, args.length)
  batches = [{task: {k: torch.from_numpy(v).long() if k == "labels" else torch.from_numpy(v)
                     for k, v in arrays.items()}
              for task, arrays in batch.items()} for batch in batches]

  def learning_rate(step):
    # optax.linear_schedule(peak, 0, total_steps) with no warm-up.
    return opt["learning_rate"] * (1.0 - min(step, args.total_steps) / args.total_steps)

  def build(dropout):
    model = ref.MultiTaskBert(config, NUM_CLASSES, NUM_TAGS, dropout)
    ref.load_weights(model, os.path.join(args.weights, "encoder"), heads)
    model.train()
    return model, ref.make_optimizer(model, opt)

  result = {"framework": "torch", "torch": torch.__version__,
            "threads": torch.get_num_threads()}
  if args.check_steps:
    model, optimizer = build(0.0)
    result["check_losses"] = [
        ref.train_step(model, optimizer, batches[i], learning_rate(i),
                       opt["clip_norm"]).tolist() for i in range(args.check_steps)]

  model, optimizer = build(args.dropout)
  ref.train_step(model, optimizer, batches[0], learning_rate(0), opt["clip_norm"])
  times = []
  with PeakMemory() as memory:
    before = memory.current()
    for s in range(1, len(batches)):
      start = time.perf_counter()
      losses = ref.train_step(model, optimizer, batches[s], learning_rate(s),
                              opt["clip_norm"])
      times.append(time.perf_counter() - start)
  result.update(step_s=times, rss_before=before, rss_peak=memory.peak,
                final_losses=losses.tolist(), compile_s=0.0)
  rows = 2 * args.batch_per_task * args.length
  a, b = torch.ones(rows, 384), torch.ones(384, 1536)
  result["gemm_gflops"] = _gemm_rate(lambda: a @ b, 2 * rows * 384 * 1536)
  return result


# ---------------------------------------------------------------- the driver


def _worker_command(args, framework, out, weights, export, check_steps):
  command = [sys.executable, os.path.abspath(__file__), "--worker", framework,
             "--out", out, "--batch-per-task", str(args.batch_per_task),
             "--length", str(args.length), "--steps", str(args.steps),
             "--threads", str(args.threads), "--dropout", str(args.dropout),
             "--attention-impl", args.attention_impl,
             "--total-steps", str(args.total_steps),
             "--check-steps", str(check_steps)]
  if export:
    command += ["--export", weights]
  if framework == "torch":
    command += ["--weights", weights]
  return command


def _run_worker(command) -> dict:
  out = command[command.index("--out") + 1]
  completed = subprocess.run(command, cwd=REPO)
  if completed.returncode:
    raise SystemExit(f"worker failed ({completed.returncode}): {' '.join(command)}")
  with open(out) as f:
    return json.load(f)


def main(args) -> None:
  has_torch = importlib.util.find_spec("torch") is not None
  if not has_torch:
    print("PyTorch is not installed: timing ours only, no ratio "
          "(pip install torch==2.13.0 for the side-by-side comparison).")
  from mtl_jax.encoders import EncoderConfig  # noqa: F401 (fails early if not importable)
  config = encoder_config(args.dropout)
  rows = 2 * args.batch_per_task
  flops = matmul_flops(config, rows, args.length)
  print(f"workload: {rows} sequences x {args.length} tokens ({args.batch_per_task} per task), "
        f"MiniLM-L6 shape, dropout {args.dropout}, {args.threads} threads; "
        f"{flops / 1e9:.0f} GFLOP of matrix products per step")
  results = {"jax": [], "torch": []}
  with tempfile.TemporaryDirectory() as tmp:
    for r in range(args.rounds):
      order = ["jax", "torch"] if r % 2 == 0 else ["torch", "jax"]
      for framework in order:
        if framework == "torch" and not has_torch:
          continue
        first = r == 0
        command = _worker_command(args, framework, os.path.join(tmp, "out.json"), tmp,
                                  export=first and framework == "jax",
                                  check_steps=args.check_steps if first else 0)
        result = _run_worker(command)
        results[framework].append(result)
        print(f"round {r} {framework:5s}: steps "
              + " ".join(f"{t:.2f}" for t in result["step_s"])
              + f" s, compile {result['compile_s']:.1f} s, "
              + (f"attention {result['attention']}, " if "attention" in result else "")
              + f"GEMM {result['gemm_gflops']:.0f} GFLOP/s", flush=True)
  _report(results, flops, has_torch)


def _report(results, flops, has_torch) -> None:
  print()
  summary = {}
  for framework, runs in results.items():
    if not runs:
      continue
    # Median over rounds of each round's median step.
    step = float(np.median([np.median(r["step_s"]) for r in runs]))
    gemm = float(np.median([r["gemm_gflops"] for r in runs]))
    peak = max(r["rss_peak"] for r in runs) / 2**20
    delta = max(r["rss_peak"] - r["rss_before"] for r in runs) / 2**20
    share = flops / (gemm * 1e9) / step
    summary[framework] = step
    print(f"{framework:5s}: step {step:.3f} s (median), compile "
          f"{np.median([r['compile_s'] for r in runs]):.1f} s, GEMM {gemm:.0f} GFLOP/s, "
          f"matmul share {share:.2f}, peak RSS {peak:.0f} MiB (+{delta:.0f} MiB in steps)")
  if not has_torch:
    return
  ours, theirs = results["jax"][0]["check_losses"], results["torch"][0]["check_losses"]
  difference = float(np.max(np.abs(np.asarray(ours) - np.asarray(theirs))))
  print(f"losses on the first {len(ours)} steps, dropout off (ner, news): ours {ours} "
        f"reference {theirs}; max |difference| {difference:.2e}")
  if not difference <= LOSS_TOLERANCE:
    raise SystemExit(f"losses differ from the reference by {difference:.2e} > "
                     f"{LOSS_TOLERANCE}")
  print(f"ratio {summary['jax'] / summary['torch']:.3f}")


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch-per-task", type=int, default=16,
                      help="sequences per task and step (the encoder sees twice this)")
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
  parser.add_argument("--dropout", type=float, default=0.1)
  parser.add_argument("--attention-impl", default="auto", choices=("auto", "xla", "cpu_kernel"),
                      help="our encoder's attention core (EncoderConfig.attention_impl)")
  parser.add_argument("--check-steps", type=int, default=3,
                      help="first steps whose losses must match the reference")
  parser.add_argument("--total-steps", type=int, default=1000,
                      help="run length for the learning-rate schedule")
  parser.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
  parser.add_argument("--out", help=argparse.SUPPRESS)
  parser.add_argument("--export", help=argparse.SUPPRESS)
  parser.add_argument("--weights", help=argparse.SUPPRESS)
  return parser.parse_args(argv)


if __name__ == "__main__":
  sys.path.insert(0, REPO)
  arguments = parse_args()
  if arguments.worker:
    _pin_threads(arguments.threads)
    worker = jax_worker if arguments.worker == "jax" else torch_worker
    output = worker(arguments)
    with open(arguments.out, "w") as f:
      json.dump(output, f)
  else:
    main(arguments)

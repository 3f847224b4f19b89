"""Balancing overhead: one train step per method against equal weighting, side by side.

Every balancing method's real train step (`make_train_step`, jitted with the
state donated, AdamW with clipping as a run uses) is timed against the
equal-weighting step of the same model in the same process, alternating
(equal, method, equal, method, ...), and reported as a ratio (the median over
rounds of the per-round mean step times). Also the "naive" way, one backward
pass per task (`jax.jacrev` of the loss vector), the memory XLA plans for
each step's temporaries (`memory_analysis`), and the FLOPs and bytes XLA counts
in each compiled step against equal weighting's (`cost_analysis`): the work a
method adds, which the timings on a shared CPU (noise of +-20% per step) can
only bound.

    python benchmarks/balancing_overhead.py                       # the issue's setting
    python benchmarks/balancing_overhead.py --tasks 2 --methods gradnorm pcgrad \\
        --modes representation full --rounds 1 --steps 2

The default workload is the issue's: a MiniLM-L6-shaped encoder (6 layers,
hidden 384, 12 heads, FFN 1536, vocab 30,522), batch 32, sequence 128, the 32
sequences split evenly over T tasks alternating sequence classification and
token tagging (16 per task at T = 2, 4 at T = 8), so the encoder does the same
work at every T and the ratio shows what balancing T tasks adds to it
(`--batch-per-task N` gives every task N sequences instead).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout first

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax import weighting
from mtl_jax.config import default_config
from mtl_jax.encoders import EncoderConfig
from mtl_jax.sharing import HardSharingModel, TaskHead
from mtl_jax.tasks.kinds import Classification, Tagging
from mtl_jax.training import TrainState, make_optimizer, make_train_step, task_losses


def build(num_tasks, args):
  encoder = EncoderConfig(vocab_size=args.vocab, hidden_size=args.hidden,
                          num_layers=args.layers, num_heads=args.heads,
                          intermediate_size=args.ffn, max_position_embeddings=512)
  kinds = {f"task{i}": Classification() if i % 2 == 0 else Tagging()
           for i in range(num_tasks)}
  model = HardSharingModel(encoder, [TaskHead(name, kind, 4 if i % 2 == 0 else 9)
                                     for i, (name, kind) in enumerate(kinds.items())])
  rows = per_task_rows(num_tasks, args)
  rng = np.random.default_rng(0)
  batch = {}
  for name, kind in kinds.items():
    ids = rng.integers(1, args.vocab, (rows, args.seq)).astype(np.int32)
    shape = (rows,) if isinstance(kind, Classification) else (rows, args.seq)
    batch[name] = {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
                   "attention_mask": np.ones_like(ids),
                   "labels": rng.integers(0, 4, shape).astype(np.int32)}
  return model, kinds, batch


def per_task_rows(num_tasks, args):
  if args.batch_per_task:
    return args.batch_per_task
  if args.batch % num_tasks:
    raise SystemExit(f"--batch {args.batch} does not split evenly over {num_tasks} tasks")
  return args.batch // num_tasks


def naive_step(model, kinds, optimizer):
  """Per-task gradients by one backward pass per task, summed (the straightforward way)."""

  def step(state, batch, rng):
    losses_fn = lambda p: task_losses(model, p, batch, train=True, rng=rng)
    grads_k = jax.jacrev(losses_fn)(state.params)
    norms_k = weighting.gradient_norms(grads_k["encoder"])
    grads = jax.tree.map(lambda g: jnp.sum(g, axis=0), grads_k)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = jax.tree.map(lambda p, u: p + u, state.params, updates)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), norms_k

  return step


def variants(args):
  """(label, spec, gradient_mode, diagnostics) for every method and mode asked for."""
  rows = []
  for name in args.methods:
    if name == "naive":
      rows.append(("naive: one backward per task", None, None, False))
      continue
    if name == "diagnostics":
      rows.append(("equal + diagnostics", "equal", "representation", True))
      continue
    method = weighting.from_spec(name if name != "static" else "static(weights=[1.0])",
                                 num_tasks=1)
    if isinstance(method, weighting.LossWeighting):
      # Loss-only methods take no per-task gradients; norm-reading ones are
      # timed where their paper measures norms and at the representation.
      modes = ([None] if method.observe is None else
               list(dict.fromkeys([method.gradient_mode or "representation",
                                   "representation"])))
    else:
      modes = [m for m in args.modes if m in method.modes]
    for mode in modes:
      rows.append((name, name, mode, False))
  return rows


def spec_for(name, num_tasks):
  if name == "static":
    return f"static(weights={[1.0] * num_tasks})"
  return name


def mean_step_time(step, host_state, batch, steps):
  state = jax.device_put(host_state)
  times = []
  for i in range(steps):
    start = time.perf_counter()
    state, metrics = step(state, batch, jax.random.PRNGKey(i))
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  return statistics.mean(times)


def temp_bytes(compiled):
  analysis = compiled.memory_analysis()
  return None if analysis is None else analysis.temp_size_in_bytes


def work(compiled):
  """(FLOPs, bytes accessed) that XLA counts in the compiled step: the added work,
  free of the timing noise of a shared machine (None where the backend has no count)."""
  analysis = compiled.cost_analysis()
  if not analysis:
    return None, None
  return analysis.get("flops"), analysis.get("bytes accessed")


def run(num_tasks, args):
  model, kinds, batch = build(num_tasks, args)
  config = default_config()
  optimizer, _ = make_optimizer(config.optimizer, 1000)
  params = model.init(jax.random.PRNGKey(0))
  rng = jax.random.PRNGKey(1)
  batch = jax.device_put(batch)

  def compile_step(step_fn, method_state):
    host_state = jax.device_get(TrainState.create(params, optimizer, method_state,
                                                  jax.random.PRNGKey(2)))
    start = time.perf_counter()
    compiled = jax.jit(step_fn, donate_argnums=0).lower(host_state, batch, rng).compile()
    seconds = time.perf_counter() - start
    mean_step_time(compiled, host_state, batch, 1)  # warm up
    return compiled, host_state, seconds

  equal = weighting.from_spec("equal", num_tasks=num_tasks)
  baseline = compile_step(make_train_step(model, equal, optimizer), equal.init(num_tasks))
  results = []
  for label, name, mode, diagnostics in variants(args):
    if name is None:
      compiled = compile_step(naive_step(model, kinds, optimizer), equal.init(num_tasks))
    else:
      method = weighting.from_spec(spec_for(name, num_tasks), num_tasks=num_tasks)
      compiled = compile_step(make_train_step(model, method, optimizer,
                                              gradient_mode=mode or "auto",
                                              diagnostics=diagnostics),
                              method.init(num_tasks))
    results.append({"method": label, "mode": mode or "", "compiled": compiled})
    print(f"  T={num_tasks} compiled {label} ({mode or '-'}) in {compiled[2]:.0f}s",
          file=sys.stderr, flush=True)

  for round_index in range(args.rounds):
    for result in results:
      equal_time = mean_step_time(baseline[0], baseline[1], batch, args.steps)
      method_time = mean_step_time(result["compiled"][0], result["compiled"][1], batch,
                                   args.steps)
      result.setdefault("ratios", []).append(method_time / equal_time)
      result.setdefault("equal_seconds", []).append(equal_time)
      # Printed as measured, so a run cut short still leaves its numbers.
      print(f"  T={num_tasks} round {round_index + 1} {result['method']} "
            f"({result['mode'] or '-'}): ratio {method_time / equal_time:.3f} "
            f"(equal {equal_time:.3f}s)", file=sys.stderr, flush=True)
    print(f"  T={num_tasks} round {round_index + 1}/{args.rounds} done", file=sys.stderr,
          flush=True)

  base_temp = temp_bytes(baseline[0])
  base_flops, base_bytes = work(baseline[0])
  ratio_of = lambda value, base: None if not value or not base else value / base
  rows = []
  for result in results:
    temp = temp_bytes(result["compiled"][0])
    flops, accessed = work(result["compiled"][0])
    rows.append({"tasks": num_tasks, "method": result["method"], "mode": result["mode"],
                 "ratio": median_or_none(result.get("ratios")),
                 "ratios": result.get("ratios", []),
                 "equal_step_s": median_or_none(result.get("equal_seconds")),
                 "flops": flops, "equal_flops": base_flops,
                 "flops_ratio": ratio_of(flops, base_flops),
                 "bytes_ratio": ratio_of(accessed, base_bytes),
                 "temp_mb": None if temp is None else temp / 2**20,
                 "equal_temp_mb": None if base_temp is None else base_temp / 2**20})
  return rows


def median_or_none(values):
  return statistics.median(values) if values else None


def table(rows, task_counts):
  by_key = {}
  for row in rows:
    by_key.setdefault((row["method"], row["mode"]), {})[row["tasks"]] = row
  header = ["method", "gradient mode"]
  for t in task_counts:
    header += [f"T={t} step / equal", f"T={t} FLOPs / equal", f"T={t} bytes / equal",
               f"T={t} temp MB (equal)"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for (method, mode), by_tasks in by_key.items():
    cells = [method, mode or "-"]
    for t in task_counts:
      row = by_tasks.get(t)
      if row is None:
        cells += ["", "", "", ""]
        continue
      cells.append("" if row["ratio"] is None else f"{row['ratio']:.2f}x")
      for key in ("flops_ratio", "bytes_ratio"):
        cells.append("" if row[key] is None else f"{row[key]:.3f}x")
      cells.append("" if row["temp_mb"] is None else
                   f"{row['temp_mb']:.0f} ({row['equal_temp_mb']:.0f})")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--tasks", type=int, nargs="+", default=[2, 8])
  parser.add_argument("--batch", type=int, default=32,
                      help="sequences per step, split evenly over the tasks")
  parser.add_argument("--batch-per-task", type=int, default=0,
                      help="sequences per task instead (0: --batch / T)")
  parser.add_argument("--seq", type=int, default=128)
  parser.add_argument("--hidden", type=int, default=384)
  parser.add_argument("--layers", type=int, default=6)
  parser.add_argument("--heads", type=int, default=12)
  parser.add_argument("--ffn", type=int, default=1536)
  parser.add_argument("--vocab", type=int, default=30522)
  parser.add_argument("--methods", nargs="+",
                      default=["naive", "diagnostics"] + [n for n in weighting.names()
                                                          if n != "equal"])
  parser.add_argument("--modes", nargs="+", default=["representation", "full"],
                      help="gradient modes of the aggregation methods")
  parser.add_argument("--steps", type=int, default=3, help="timed steps per block")
  parser.add_argument("--rounds", type=int, default=2,
                      help="timing rounds (0: compile only, for the FLOPs/bytes/memory columns)")
  parser.add_argument("--json", help="also write the rows here")
  args = parser.parse_args(argv)
  print(f"devices: {jax.devices()}; {args.batch_per_task or args.batch} sequences "
        f"{'per task' if args.batch_per_task else 'per step'} x {args.seq} tokens; encoder "
        f"{args.layers} layers, hidden {args.hidden}", file=sys.stderr)
  rows = []
  for num_tasks in args.tasks:
    rows += run(num_tasks, args)
  print(table(rows, args.tasks))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()

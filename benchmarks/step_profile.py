"""Where our train step's time goes, op by op: XLA's own trace of the loop's step.

The `step_speed.py` workload and step (`build_jax_step`: the guarded,
laid-out step `training/loop.py` runs). After a compile and a warm step,
`--steps` steps run under `jax.profiler`; every instruction XLA executes
(each fusion, product, custom call) appears in the trace with its duration.
The instructions are matched to the compiled HLO and summed two ways:

* by kind: matrix products (any instruction whose computation holds a dot,
  and the BLAS custom call `mtl_gemm`), the attention kernel and the
  layer-norm kernel (our custom calls), reductions, gathers/scatters,
  copies and transposes, other elementwise fusions;
* by op: the `op_name` metadata with layer numbers folded (`layer_3` ->
  `layer_*`), with the bytes its instructions read and write and the rate
  that implies (a pass over memory runs at a few GB/s to tens of GB/s here;
  far below that, the op is computing, or waiting).

Times are per step (the total over `--steps` divided by it). Profiling adds a
little overhead to each instruction; compare shares, and time the step itself
with `step_speed.py`. Timing needs the machine to itself.

  python benchmarks/step_profile.py --dropout 0 [--top 25] [--json F]
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

KINDS = ("matrix products", "attention kernel", "layer-norm kernel", "reductions",
         "gathers and scatters", "copies and transposes", "other elementwise", "other")
_COMPUTATION = re.compile(r"^(?:ENTRY )?%(\S+) .*\{$")


def parse_hlo(hlo_text: str) -> dict[str, dict]:
  """Every instruction XLA runs as a unit: name -> opcode, bytes moved, op, kind.

  Instructions inside fusions are left out (the fusion runs them); a
  fusion's kind is read from the computation it calls (a dot inside makes it
  a product, whichever library runs it).
  """
  from step_memory import _FREE, _INSTRUCTION, _bytes
  bodies: dict[str, str] = {}
  instructions: dict[str, tuple] = {}
  sizes: dict[str, int] = {}
  fused = set()  # computations run inside an instruction, not as units
  computation = None
  for line in hlo_text.splitlines():
    header = _COMPUTATION.match(line)
    if header:
      computation = header.group(1)
      bodies[computation] = ""
      continue
    match = _INSTRUCTION.match(line)
    if not match or computation is None:
      continue
    bodies[computation] += line + "\n"
    name, shape, opcode, operands, rest = match.groups()
    sizes[name] = _bytes(shape)
    instructions[name] = (computation, opcode, operands, rest)
    if opcode == "fusion":
      fused.update(re.findall(r"calls=%([\w.\-]+)", rest))
    fused.update(re.findall(r"to_apply=%([\w.\-]+)", rest))  # reducers, scatter combiners
  table = {}
  for name, (computation, opcode, operands, rest) in instructions.items():
    if computation in fused or opcode in _FREE:
      continue
    called = re.search(r"calls=%([\w.\-]+)", rest)
    body = bodies.get(called.group(1), "") if called else ""
    text = body + f" {opcode}(" + rest
    if re.search(r' (dot|convolution)\(|custom_call_target="mtl_gemm"', text):
      kind = "matrix products"
    elif re.search(r'custom_call_target="mtl_attention', text):
      kind = "attention kernel"
    elif re.search(r'custom_call_target="mtl_layer_norm', text):
      kind = "layer-norm kernel"
    elif re.search(r" (reduce|reduce-window)\(", text):
      kind = "reductions"
    elif re.search(r" (gather|scatter|dynamic-slice|dynamic-update-slice)\(", text):
      kind = "gathers and scatters"
    elif opcode in ("copy", "transpose") or (
        opcode == "fusion" and not re.search(r" (add|multiply|subtract|divide|exponential|"
                                             r"select|compare|maximum|tanh|rsqrt)\(", body)):
      kind = "copies and transposes"
    elif opcode == "fusion" or opcode in ("add", "multiply", "select", "convert"):
      kind = "other elementwise"
    else:
      kind = "other"
    moved = sizes[name] + sum(sizes.get(o, 0) for o in re.findall(r"%([\w.\-]+)", operands))
    op_name = re.search(r'op_name="([^"]*)"', rest)
    op = re.sub(r"layer_\d+", "layer_*", op_name.group(1) if op_name else opcode)
    op = re.sub(r"^jit\([^)]*\)/", "", op)
    table[name] = {"opcode": opcode, "bytes": moved, "op": op, "kind": kind}
  return table


def trace_durations(trace_dir: str) -> dict[str, tuple[float, int]]:
  """Total seconds and count of each named complete event in the perfetto trace."""
  path = glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True)[0]
  with gzip.open(path) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  totals: dict[str, list] = collections.defaultdict(lambda: [0.0, 0])
  for event in events:
    if event.get("ph") == "X":
      totals[event["name"]][0] += event.get("dur", 0) / 1e6
      totals[event["name"]][1] += 1
  return {name: (seconds, count) for name, (seconds, count) in totals.items()}


def profile(args) -> dict:
  """Per-step seconds by kind and by op for the loop's step at `args.dropout`."""
  import jax
  import step_speed
  from mtl_jax.training.nonfinite import NonFiniteCounter

  config = step_speed.encoder_config(0.0, args.attention_impl, args.dtype, args.tiny,
                                     args.matmul_impl, args.norm_impl)
  batches = step_speed.make_batches(args.steps + 2, args.batch_per_task, args.length,
                                    vocab=config.vocab_size)
  _, state, step, layout = step_speed.build_jax_step(args, args.dropout)
  counts = NonFiniteCounter(100).counts
  batches = [layout.put_batch(b) for b in batches]
  # The loop's step compiled once, ahead of time: the program whose HLO is read is the
  # one that runs (every batch has the same shape).
  step = step.lower(state, counts, batches[0]).compile()
  table = parse_hlo(step.as_text())
  for batch in batches[:2]:  # two warm steps: buffers and thread pools settled
    state, counts, metrics = step(state, counts, batch)
  jax.block_until_ready((state, metrics))
  with tempfile.TemporaryDirectory() as trace_dir:
    times = step_speed.cpu_times()
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    for batch in batches[2:]:
      state, counts, metrics = step(state, counts, batch)
    jax.block_until_ready((state, metrics))
    jax.profiler.stop_trace()
    steal = step_speed.steal_share(times, step_speed.cpu_times())
    durations = trace_durations(trace_dir)

  by_kind = collections.Counter()
  by_op: dict[str, dict] = {}
  for name, (seconds, _) in durations.items():
    if name not in table:  # host-side events (Python, PjRt), not XLA instructions
      continue
    info = table[name]
    per_step = seconds / args.steps
    by_kind[info["kind"]] += per_step
    entry = by_op.setdefault(info["op"], {"seconds": 0.0, "bytes": 0, "instructions": 0,
                                          "kind": collections.Counter()})
    entry["seconds"] += per_step
    entry["bytes"] += info["bytes"]
    entry["instructions"] += 1
    entry["kind"][info["kind"]] += per_step
  ops = sorted(by_op.items(), key=lambda item: -item[1]["seconds"])
  return {"dropout": args.dropout, "steps": args.steps, "steal": steal,
          "instructions_s": sum(by_kind.values()),
          "by_kind": {kind: by_kind[kind] for kind in KINDS if by_kind[kind]},
          "by_op": [{"op": op, "seconds": e["seconds"], "bytes": e["bytes"],
                     "instructions": e["instructions"],
                     "kind": e["kind"].most_common(1)[0][0]} for op, e in ops]}


def main(argv=None) -> dict:
  import step_speed
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dropout", type=float, default=0.1)
  parser.add_argument("--steps", type=int, default=3, help="profiled steps (after a warm one)")
  parser.add_argument("--top", type=int, default=25, help="ops listed")
  parser.add_argument("--json", help="also write the result here")
  own, rest = parser.parse_known_args(argv)
  args = step_speed.parse_args(rest)  # the workload's options: --batch-per-task, --tiny, ...
  args.dropout, args.steps = own.dropout, own.steps
  result = profile(args)
  total = result["instructions_s"]
  print(f"dropout {args.dropout:g}: XLA instructions {total:.3f} s per step "
        f"({args.steps} profiled steps"
        + (f", {result['steal']:.0%} of CPU time stolen by the hypervisor meanwhile"
           if result["steal"] is not None else "") + ")")
  for kind, seconds in result["by_kind"].items():
    print(f"  {seconds:7.3f} s  {seconds / total:5.1%}  {kind}")
  print(f"the {own.top} ops taking the most time (layers folded), per step:")
  for entry in result["by_op"][:own.top]:
    rate = entry["bytes"] / entry["seconds"] / 1e9 if entry["seconds"] else 0.0
    print(f"  {entry['seconds'] * 1e3:8.1f} ms  {entry['seconds'] / total:5.1%}  "
          f"{entry['bytes'] / 1e6:8.1f} MB {rate:6.1f} GB/s  {entry['instructions']:3d} x  "
          f"{entry['kind']:22s} {entry['op']}")
  if own.json:
    with open(own.json, "w") as f:
      json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  main()

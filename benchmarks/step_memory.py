"""What XLA plans to hold during our train step: `compiled.memory_analysis()`, no timing.

The workload is `step_speed.py`'s (MiniLM-L6 shape, 16 sequences of 128 tokens per
task, two tasks). For the loop's step (`training/sharded.py`, the non-finite
guard included) and the bare jitted `train_step`, at dropout 0.1 and 0: the
state's bytes (arguments, donated: aliased to the outputs) and the temporaries
XLA allocates for one step (activations kept for the backward pass, gradients,
the optimizer's new values). With `--largest N`, also the N largest values of
the loop step's temporary allocation (from XLA's buffer-assignment dump).
With `--bytes-by-op N`, XLA's count of the bytes the loop step accesses and
the N ops of the model (layers folded together) whose instructions read and
write the most: each instruction's operands plus its output, from the
optimised HLO, a fusion counted once (the passes over memory, not timed).

  python benchmarks/step_memory.py [--largest 12] [--bytes-by-op 20]
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
MiB = 2**20


def compiled_steps(dropout: float, batch_per_task: int, length: int, matmul_impl: str = "auto",
                   norm_impl: str = "auto"):
  import jax
  import step_speed
  from mtl_jax.training.nonfinite import NonFiniteCounter
  from mtl_jax.training.sharded import jit_loop_step

  args = step_speed.parse_args(["--batch-per-task", str(batch_per_task), "--length", str(length),
                                "--matmul-impl", matmul_impl, "--norm-impl", norm_impl])
  parts = step_speed.jax_parts(args, dropout)
  batch = parts.layout.put_batch(step_speed.make_batches(1, batch_per_task, length)[0])
  loop = jit_loop_step(parts.train_step, parts.abstract, parts.layout, max_nonfinite_in_a_row=100)
  bare = jax.jit(parts.train_step, donate_argnums=0)
  return {"loop step": loop.lower(parts.abstract, NonFiniteCounter(100).counts, batch).compile(),
          "bare train_step": bare.lower(parts.abstract, batch, jax.random.key(0)).compile()}


def largest_temporaries(dump_dir: str, count: int) -> list[tuple[int, str]]:
  """The largest values in the loop step's preallocated temporary buffer."""
  paths = glob.glob(os.path.join(dump_dir, "*loop_step*buffer-assignment.txt"))
  text = open(paths[0]).read()
  temp = text[text.index("preallocated-temp"):]
  temp = temp[:temp.find("\nallocation ")]
  values = re.findall(r"\(size=(\d+),offset=\d+\): (\S+)", temp)
  shapes = collections.Counter()
  for size, shape in values:
    shapes[int(size), shape] += 1
  return [(size * n, f"{n} x {shape}") for (size, shape), n in
          sorted(shapes.items(), key=lambda item: -item[0][0] * item[1])[:count]]


_DTYPE_BYTES = {"f64": 8, "s64": 8, "u64": 8, "f32": 4, "s32": 4, "u32": 4, "bf16": 2,
                "f16": 2, "s16": 2, "u16": 2, "s8": 1, "u8": 1, "pred": 1}
_SHAPE = re.compile(r"\b(" + "|".join(_DTYPE_BYTES) + r")\[([\d,]*)\]")
_INSTRUCTION = re.compile(r"\s*(?:ROOT )?%(\S+) = (.*?) ([a-z][\w-]*)\((.*?)\)(.*)$")
_FREE = ("parameter", "constant", "get-tuple-element", "tuple", "bitcast")


def _bytes(shape: str) -> int:
  total = 0
  for dtype, dims in _SHAPE.findall(shape):
    count = 1
    for dim in filter(None, dims.split(",")):
      count *= int(dim)
    total += count * _DTYPE_BYTES[dtype]
  return total


def bytes_by_op(hlo_text: str, count: int) -> list[tuple[int, int, str]]:
  """The ops of the entry computation moving the most bytes: (bytes, instructions, op).

  An op is the instruction's `op_name` metadata with layer numbers folded
  (`layer_3` -> `layer_*`) and the jit prefix dropped.
  """
  entry = hlo_text[hlo_text.index("\nENTRY"):]
  entry = entry[:entry.index("\n}\n")]
  sizes, totals, counts = {}, collections.Counter(), collections.Counter()
  for line in entry.splitlines()[1:]:
    match = _INSTRUCTION.match(line)
    if not match:
      continue
    name, shape, opcode, operands, rest = match.groups()
    sizes[name] = _bytes(shape)
    if opcode in _FREE:
      continue
    moved = sizes[name] + sum(sizes.get(operand, 0)
                              for operand in re.findall(r"%([\w.\-]+)", operands))
    op_name = re.search(r'op_name="([^"]*)"', rest)
    op = re.sub(r"layer_\d+", "layer_*", op_name.group(1) if op_name else opcode)
    op = re.sub(r"^jit\([^)]*\)/", "", op)
    totals[op] += moved
    counts[op] += 1
  return [(moved, counts[op], op) for op, moved in totals.most_common(count)]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch-per-task", type=int, default=16)
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--largest", type=int, default=0)
  parser.add_argument("--bytes-by-op", type=int, default=0)
  parser.add_argument("--matmul-impl", default="auto", choices=("auto", "xla", "blas"),
                      help="the encoder's dense products (EncoderConfig.matmul_impl)")
  parser.add_argument("--norm-impl", default="auto", choices=("auto", "xla", "cpu_kernel"),
                      help="the encoder's layer norms (EncoderConfig.norm_impl)")
  args = parser.parse_args(argv)
  dump = tempfile.mkdtemp()
  if args.largest:  # before jax starts: XLA reads its flags once
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_dump_to={dump} --xla_dump_hlo_pass_re=NONE")
  for dropout in (0.1, 0.0):
    steps = compiled_steps(dropout, args.batch_per_task, args.length, args.matmul_impl,
                           args.norm_impl)
    for name, compiled in steps.items():
      m = compiled.memory_analysis()
      print(f"{name:15s} dropout {dropout:g}: state {m.argument_size_in_bytes / MiB:.0f} MiB "
            f"(aliased to the outputs: {m.alias_size_in_bytes / MiB:.0f} MiB), temporaries "
            f"{m.temp_size_in_bytes / MiB:.0f} MiB", flush=True)
    if args.largest and dropout == 0.1:
      print("largest values held in the loop step's temporaries (they share the buffer "
            "where their lifetimes do not overlap):")
      for size, what in largest_temporaries(dump, args.largest):
        print(f"  {size / MiB:7.1f} MiB  {what}")
    if args.bytes_by_op:
      loop = steps["loop step"]
      print(f"loop step dropout {dropout:g}: XLA counts "
            f"{loop.cost_analysis()['bytes accessed'] / 1e6:,.0f} MB accessed; the ops moving "
            "the most (operands + outputs of their instructions):")
      for moved, instructions, op in bytes_by_op(loop.as_text(), args.bytes_by_op):
        print(f"  {moved / 1e6:8.1f} MB  {instructions:3d} x  {op}")

if __name__ == "__main__":
  main()

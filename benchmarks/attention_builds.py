"""The attention kernel of a git revision against the working tree's, in one process.

Builds `mtl_jax/kernels/attention_cpu.cc` (with this folder's headers) twice
into a temporary directory, as `--base` has it and as the working tree has
it, registers each build's two custom calls under names of its own, and
times forward + backward, then the forward alone, of one layer's attention
core (the step benchmark's shape: 32 sequences of 128 tokens, 12 heads of 32,
real lengths in [64, 128]) in alternating pairs (who goes first alternates
by pair). Pairs seconds apart cancel the drift of this machine's speed that
separate processes minutes apart do not. Prints the largest gradient
difference between the builds, then each timing's medians and the paired
ratio working tree / base (min, median, max).

  python benchmarks/attention_builds.py --base HEAD~1 --dropout 0 --pairs 30
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
KERNELS = "mtl_jax/kernels"
_FILES = ("attention_cpu.cc", "parallel_for.h", "vectors.h")


def _sources(revision: str | None, into: pathlib.Path) -> None:
  """Writes the kernel's source files as `revision` (None: the working tree) has them."""
  into.mkdir(parents=True)
  for name in _FILES:
    if revision is None:
      text = (REPO / KERNELS / name).read_text()
    else:
      shown = subprocess.run(["git", "-C", str(REPO), "show", f"{revision}:{KERNELS}/{name}"],
                             capture_output=True, text=True)
      if shown.returncode:
        if name == "vectors.h":  # before the header existed
          continue
        raise SystemExit(f"git show {revision}:{KERNELS}/{name} failed: {shown.stderr.strip()}")
      text = shown.stdout
    (into / name).write_text(text)


def _build(source_dir: pathlib.Path, out: pathlib.Path) -> ctypes.CDLL:
  import jax

  from mtl_jax.kernels import build
  command = [*shlex.split(os.environ.get("CXX", "c++")), *build._FLAGS,  # pylint: disable=protected-access
             "-I", str(source_dir), "-isystem", jax.ffi.include_dir(),
             str(source_dir / "attention_cpu.cc"), "-o", str(out)]
  done = subprocess.run(command, capture_output=True, text=True)
  if done.returncode:
    raise SystemExit(f"{shlex.join(command)} failed:\n{done.stderr[-2000:]}")
  return ctypes.CDLL(str(out), mode=os.RTLD_LOCAL)


def _attention(tag: str, rate: float):
  """The attention core through build `tag`'s custom calls (attention.py's contract)."""
  import jax
  import jax.numpy as jnp

  from mtl_jax.encoders import attention

  def forward(qkv, bias, seeds):
    b, l, _, h, k = qkv.shape
    return jax.ffi.ffi_call(f"{tag}_attention_forward", (
        jax.ShapeDtypeStruct((b, l, h, k), jnp.float32),
        jax.ShapeDtypeStruct((b, h, l, 2), jnp.float32)))(
            qkv, bias, seeds, **attention._kernel_attrs(k, rate))  # pylint: disable=protected-access

  @jax.custom_vjp
  def core(qkv, bias, seeds):
    return forward(qkv, bias, seeds)[0]

  def core_forward(qkv, bias, seeds):
    ctx, stats = forward(qkv, bias, seeds)
    return ctx, (qkv, bias, seeds, stats, ctx)

  def core_backward(residuals, dctx):
    qkv, bias, seeds, stats, ctx = residuals
    dqkv = jax.ffi.ffi_call(f"{tag}_attention_backward",
                            jax.ShapeDtypeStruct(qkv.shape, jnp.float32))(
        qkv, bias, seeds, stats, ctx, dctx,
        **attention._kernel_attrs(qkv.shape[-1], rate))  # pylint: disable=protected-access
    return dqkv, jnp.zeros_like(bias), jnp.zeros_like(seeds)

  core.defvjp(core_forward, core_backward)
  return core


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--base", default="HEAD", help="the git revision to compare against")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--heads", type=int, default=12)
  parser.add_argument("--head-dim", type=int, default=32)
  parser.add_argument("--dropout", type=float, default=0.0)
  parser.add_argument("--pairs", type=int, default=30)
  parser.add_argument("--json", help="also write the result here")
  args = parser.parse_args(argv)

  import jax
  import jax.numpy as jnp

  from mtl_jax.encoders import attention

  builds = {"base": args.base, "tree": None}
  with tempfile.TemporaryDirectory() as tmp:
    for tag, revision in builds.items():
      _sources(revision, pathlib.Path(tmp) / tag)
      library = _build(pathlib.Path(tmp) / tag, pathlib.Path(tmp) / f"{tag}.so")
      for symbol, name in (("MtlAttentionForward", "forward"),
                           ("MtlAttentionBackward", "backward")):
        jax.ffi.register_ffi_target(f"{tag}_attention_{name}",
                                    jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")
  rng = np.random.default_rng(0)
  b, l, h, k = args.batch, args.length, args.heads, args.head_dim
  qkv = jnp.asarray(rng.normal(size=(b, l, 3, h, k)), jnp.float32)
  mask = jnp.asarray(np.arange(l)[None] < rng.integers(l // 2, l + 1, b)[:, None])
  bias = attention.padding_bias(mask)
  seeds = jnp.asarray([12345, 678], jnp.uint32)
  cotangent = jnp.asarray(rng.normal(size=(b, l, h, k)), jnp.float32)
  cores = {tag: _attention(tag, args.dropout) for tag in builds}
  timed = {
      "forward + backward": {tag: jax.jit(jax.value_and_grad(
          lambda x, core=core: jnp.sum(core(x, bias, seeds) * cotangent)))
          for tag, core in cores.items()},
      "forward": {tag: jax.jit(lambda x, core=core: core(x, bias, seeds))
                  for tag, core in cores.items()}}
  gradients = {tag: fn(qkv)[1] for tag, fn in timed["forward + backward"].items()}
  result = {"base": args.base, "dropout": args.dropout, "pairs": args.pairs,
            "max_gradient_difference": float(jnp.max(jnp.abs(gradients["base"] -
                                                             gradients["tree"])))}
  print(f"[{b}, {l}, 3, {h}, {k}], dropout {args.dropout}: max |gradient difference| "
        f"{result['max_gradient_difference']:.1e} (base {args.base} vs the working tree)")
  for name, fns in timed.items():
    for fn in fns.values():
      jax.block_until_ready(fn(qkv))
    seconds = {tag: [] for tag in builds}
    for pair in range(args.pairs):
      for tag in (list(builds) if pair % 2 == 0 else list(builds)[::-1]):
        start = time.perf_counter()
        jax.block_until_ready(fns[tag](qkv))
        seconds[tag].append(time.perf_counter() - start)
    ratios = [t / s for t, s in zip(seconds["tree"], seconds["base"])]
    result[name] = {"base_ms": 1e3 * float(np.median(seconds["base"])),
                    "tree_ms": 1e3 * float(np.median(seconds["tree"])), "ratios": ratios}
    print(f"{name}: base {result[name]['base_ms']:.1f} ms, working tree "
          f"{result[name]['tree_ms']:.1f} ms (medians); paired tree / base min "
          f"{min(ratios):.3f} median {np.median(ratios):.3f} max {max(ratios):.3f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  main()

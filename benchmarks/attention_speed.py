"""The attention core alone: the fused CPU kernel against the jax.numpy version, one process.

Times forward + backward of `attention.attention_xla` and
`attention.attention_cpu_kernel` (jitted, alternating, the median of each) on
the step benchmark's shape per layer: 32 sequences of 128 tokens, 12 heads of
32, real lengths in [64, 128], attention dropout 0.1. Checks first that the
two agree (values and gradients) for the same dropout key. Then times, for
the reason the kernel exists, XLA's batched score product of that shape
against a dense GEMM of the same FLOPs (`taskset -c 0` repeats it on one core).

  python benchmarks/attention_speed.py
  python benchmarks/attention_speed.py --dropout 0 --repeats 21
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mtl_jax.encoders import attention  # noqa: E402  (after the path insert)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--heads", type=int, default=12)
  parser.add_argument("--head-dim", type=int, default=32)
  parser.add_argument("--dropout", type=float, default=0.1)
  parser.add_argument("--repeats", type=int, default=11)
  args = parser.parse_args(argv)
  if not attention.native_kernels_available():
    raise SystemExit("the CPU attention kernel did not build here")
  rng = np.random.default_rng(0)
  b, l = args.batch, args.length
  qkv = jnp.asarray(rng.normal(size=(b, l, 3, args.heads, args.head_dim)), jnp.float32)
  mask = jnp.asarray(np.arange(l)[None] < rng.integers(l // 2, l + 1, b)[:, None])
  cotangent = jnp.asarray(rng.normal(size=(b, l, args.heads, args.head_dim)), jnp.float32)
  key = jax.random.PRNGKey(1) if args.dropout else None
  impls = {"xla": attention.attention_xla, "cpu_kernel": attention.attention_cpu_kernel}
  steps = {name: jax.jit(jax.value_and_grad(
      lambda qkv, fn=fn: jnp.sum(fn(qkv, mask, key, args.dropout) * cotangent)))
           for name, fn in impls.items()}
  results = {name: step(qkv) for name, step in steps.items()}
  grad_difference = float(jnp.max(jnp.abs(results["xla"][1] - results["cpu_kernel"][1])))
  print(f"shape [{b}, {l}, 3, {args.heads}, {args.head_dim}], dropout {args.dropout}, "
        f"{jax.local_devices()[0].device_kind}; max |gradient difference| "
        f"{grad_difference:.1e}")
  times = {name: [] for name in impls}
  for r in range(args.repeats):
    for name in (list(impls) if r % 2 == 0 else list(impls)[::-1]):
      start = time.perf_counter()
      jax.block_until_ready(steps[name](qkv))
      times[name].append(time.perf_counter() - start)
  flops = 3 * 2 * 2 * b * args.heads * l * l * args.head_dim  # two products, forward + 2x
  for name, ts in times.items():
    median = float(np.median(ts))
    print(f"{name:10s}: forward + backward {median * 1e3:7.1f} ms (median of "
          f"{args.repeats}), {flops / median / 1e9:5.1f} GFLOP/s of products")
  print(f"ratio {np.median(times['cpu_kernel']) / np.median(times['xla']):.3f}")
  _product_rates(args, rng)
  _torch_sdpa(args, rng)


def _product_rates(args, rng) -> None:
  """What XLA's attention pays: one batched score product against a dense GEMM of its FLOPs."""
  n, l, k = args.batch * args.heads, args.length, args.head_dim
  q = jnp.asarray(rng.normal(size=(n, l, k)), jnp.float32)
  kt = jnp.asarray(rng.normal(size=(n, k, l)), jnp.float32)
  batched = jax.jit(lambda q, kt: jax.lax.dot_general(q, kt, (((2,), (1,)), ((0,), (0,)))))
  dense = jax.jit(lambda q, kt: q.reshape(n * l, k) @ kt[0])
  flops = 2 * n * l * l * k
  for name, fn in (("batched [n, l, k] x [n, k, l]", batched), ("dense [n l, k] x [k, l]", dense)):
    jax.block_until_ready(fn(q, kt))
    ts = []
    for _ in range(args.repeats):
      start = time.perf_counter()
      jax.block_until_ready(fn(q, kt))
      ts.append(time.perf_counter() - start)
    median = float(np.median(ts))
    print(f"XLA product, {name:30s}: {median * 1e3:6.2f} ms, {flops / median / 1e9:5.1f} GFLOP/s")


def _torch_sdpa(args, rng) -> None:
  """PyTorch's fused `scaled_dot_product_attention` on the same shape, if torch is here."""
  try:
    import torch
    import torch.nn.functional as F
  except ImportError:
    print("torch not installed: no PyTorch line")
    return
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  b, l, h, k = args.batch, args.length, args.heads, args.head_dim
  q, key, v, cotangent = (torch.tensor(rng.normal(size=(b, h, l, k)), dtype=torch.float32)
                          for _ in range(4))
  lengths = torch.tensor(rng.integers(l // 2, l + 1, b))
  mask = (torch.arange(l)[None] < lengths[:, None])[:, None, None, :]
  ts = []
  for _ in range(args.repeats + 1):
    inputs = [t.clone().requires_grad_() for t in (q, key, v)]
    start = time.perf_counter()
    out = F.scaled_dot_product_attention(*inputs, attn_mask=mask, dropout_p=args.dropout)
    (out * cotangent).sum().backward()
    ts.append(time.perf_counter() - start)
  print(f"torch {torch.__version__} scaled_dot_product_attention: forward + backward "
        f"{np.median(ts[1:]) * 1e3:7.1f} ms ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
  main()

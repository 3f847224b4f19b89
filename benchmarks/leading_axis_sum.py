"""The sum over a [b, l, d] array's leading axis: XLA's reduce against the same sum as a product.

The gradient of broadcasting [l, d] rows to every sequence is that sum (the
encoder's position embeddings, `bert.add_to_every_sequence`). Times, in one
process and alternating, `jnp.sum(g, axis=0)`, `jnp.ones(b) @ g.reshape(b, -1)`
and, for contrast, the sum over the leading two axes (a bias gradient's shape),
median of `--repeats` calls each. Timing needs the machine to itself.

  python benchmarks/leading_axis_sum.py
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--shape", type=int, nargs=3, default=(32, 128, 384))
  parser.add_argument("--repeats", type=int, default=30)
  args = parser.parse_args(argv)
  g = jnp.asarray(np.random.default_rng(0).normal(size=args.shape), jnp.float32)
  fns = {"reduce over axis 0": jax.jit(lambda g: jnp.sum(g, axis=0)),
         "ones @ g (a product)": jax.jit(
             lambda g: (jnp.ones(g.shape[0], g.dtype) @ g.reshape(g.shape[0], -1))
             .reshape(g.shape[1:])),
         "reduce over axes 0, 1": jax.jit(lambda g: jnp.sum(g, axis=(0, 1)))}
  seconds = {name: [] for name in fns}
  for fn in fns.values():
    jax.block_until_ready(fn(g))
  for _ in range(args.repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(g))
      seconds[name].append(time.perf_counter() - start)
  difference = float(jnp.max(jnp.abs(fns["reduce over axis 0"](g)
                                     - fns["ones @ g (a product)"](g))))
  result = {name: float(np.median(ts)) for name, ts in seconds.items()}
  print(f"g {list(args.shape)} float32, median of {args.repeats}; the two leading-axis sums "
        f"differ by at most {difference:.1e}")
  for name, median in result.items():
    print(f"  {name:24s} {median * 1e3:7.2f} ms")
  result["max_difference"] = difference
  return result


if __name__ == "__main__":
  main()

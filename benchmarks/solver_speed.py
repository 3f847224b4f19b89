"""The balancing solvers alone: one jitted `weigh` on a [T, T] Gram matrix, old code vs new.

Times `jax.jit(method.weigh)` for MGDA, UPGrad, CAGrad and Nash-MTL at T = 2
and 8 on 200 fixed random Gram matrices (half ill-scaled, half with two nearly
opposite gradients), each call waited for (`block_until_ready`), in fresh
processes that alternate between two checkouts of the library, an even number
of rounds with each going first in turn. Prints per (method, T) the median
microseconds per call of each checkout and the per-round ratio new / old (min,
median, max).

    git worktree add /tmp/old 2b464b4    # the solvers before issue 16
    python benchmarks/solver_speed.py --old /tmp/old --rounds 4

Needs the machine to itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("mgda", "upgrad", "cagrad", "nash_mtl")
TASKS = (2, 8)
CASES = 200

CHILD = r"""
import json, sys, time
import os
os.environ.setdefault("JAX_PLATFORMS", "cpu")
import jax, jax.numpy as jnp, numpy as np
from mtl_jax import weighting
rng = np.random.default_rng(0)
out = {}
for tasks in %(tasks)s:
  grams = []
  for case in range(%(cases)d):
    jac = rng.normal(size=(tasks, 64))
    if case %% 2:
      jac[1] = -jac[0] + 1e-2 * rng.normal(size=64)
    else:
      jac *= np.exp(1.5 * rng.normal(size=(tasks, 1)))
    grams.append(jnp.asarray(jac @ jac.T, jnp.float32))
  for name in %(methods)s:
    method = weighting.from_spec(name, num_tasks=tasks)
    state = method.init(tasks)
    weigh = jax.jit(lambda g, s: method.weigh(g, s)[0])
    jax.block_until_ready(weigh(grams[0], state))
    begin = time.perf_counter()
    for gram in grams:
      jax.block_until_ready(weigh(gram, state))
    out[f"{name}/T{tasks}"] = 1e6 * (time.perf_counter() - begin) / len(grams)
print(json.dumps(out))
"""


def measure(checkout: str) -> dict:
  code = CHILD % {"tasks": TASKS, "cases": CASES, "methods": METHODS}
  env = {**os.environ, "PYTHONPATH": checkout}
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=checkout, check=True)
  return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--old", required=True, help="a checkout of the old code")
  parser.add_argument("--new", default=REPO, help="a checkout of the new code (this one)")
  parser.add_argument("--rounds", type=int, default=4, help="an even number")
  args = parser.parse_args()
  rounds = []
  for number in range(args.rounds):
    order = ("old", "new") if number % 2 == 0 else ("new", "old")
    rounds.append({side: measure(getattr(args, side)) for side in order})
  for key in rounds[0]["old"]:
    old = [r["old"][key] for r in rounds]
    new = [r["new"][key] for r in rounds]
    ratios = [n / o for n, o in zip(new, old)]
    print(f"{key:16s} old {np.median(old):8.1f} us  new {np.median(new):8.1f} us  "
          f"new/old min {min(ratios):.2f} median {np.median(ratios):.2f} max {max(ratios):.2f}")


if __name__ == "__main__":
  main()

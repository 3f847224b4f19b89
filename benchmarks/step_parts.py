"""Where our train step's time goes: its forward, backward and optimizer apart.

The `step_speed.py` workload (MiniLM-L6 shape, 16 sequences of 128 tokens per
task, two tasks), one process: for each attention implementation and dropout
rate, the jitted forward (the task losses), forward + backward, the
optimizer's update alone and the whole `make_train_step`, each the median of
`--repeats` calls after a warm-up. The matrix products' FLOPs are printed
beside, so the time outside them can be read off. Timing needs the machine to
itself.

  python benchmarks/step_parts.py [--attention-impl cpu_kernel xla] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def median_seconds(function, *args, repeats: int) -> float:
  import jax
  jax.block_until_ready(function(*args))  # compile and warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(function(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def parts(attention_impl: str, dropout: float, tiny: bool, repeats: int) -> dict[str, float]:
  """Seconds of each part of one step."""
  import jax
  import jax.numpy as jnp
  import step_speed
  from mtl_jax import weighting as weighting_lib
  from mtl_jax.sharing import HardSharingModel, TaskHead
  from mtl_jax.tasks.kinds import Classification, Tagging
  from mtl_jax.training import TrainState, make_optimizer, make_train_step, task_losses

  config = step_speed.encoder_config(dropout, attention_impl, tiny=tiny)
  heads = [TaskHead("ner", Tagging(), step_speed.NUM_TAGS, {"dropout": dropout}),
           TaskHead("news", Classification(), step_speed.NUM_CLASSES, {"dropout": dropout})]
  model = HardSharingModel(config, heads)
  optimizer, _ = make_optimizer(step_speed.optimizer_config(), 1000)
  weighting = weighting_lib.from_spec("equal", num_tasks=2)
  batch = jax.device_put(step_speed.make_batches(1, 2 if tiny else 16, 32 if tiny else 128,
                                                 vocab=config.vocab_size)[0])
  params = model.init(jax.random.PRNGKey(0))
  rng = jax.random.PRNGKey(1)

  def loss(params):
    return jnp.sum(task_losses(model, params, batch, train=True, rng=rng))

  state = TrainState.create(params, optimizer, weighting.init(2), rng)
  grad = jax.jit(jax.grad(loss))  # compiled once: timed, and its output feeds the optimizer
  return {
      "forward": median_seconds(jax.jit(loss), params, repeats=repeats),
      "forward + backward": median_seconds(grad, params, repeats=repeats),
      "optimizer.update": median_seconds(jax.jit(optimizer.update), grad(params), state.opt_state,
                                         params, repeats=repeats),
      "whole step": median_seconds(jax.jit(make_train_step(model, weighting, optimizer)),
                                   state, batch, rng, repeats=repeats)}


def main(argv=None) -> dict:
  import step_speed
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--attention-impl", nargs="+", default=["cpu_kernel", "xla"])
  parser.add_argument("--dropouts", nargs="+", type=float, default=[0.1, 0.0])
  parser.add_argument("--repeats", type=int, default=4)
  parser.add_argument("--tiny", action="store_true", help="a 2-layer width-64 encoder")
  args = parser.parse_args(argv)
  config = step_speed.encoder_config(0.0, tiny=args.tiny)
  flops = step_speed.matmul_flops(config, 4 if args.tiny else 32, 32 if args.tiny else 128)
  print(f"matrix products: forward {flops / 3e9:.1f} GFLOP, forward + backward "
        f"{flops / 1e9:.1f} GFLOP")
  results = {}
  for impl in args.attention_impl:
    for dropout in args.dropouts:
      seconds = results[impl, dropout] = parts(impl, dropout, args.tiny, args.repeats)
      print(f"{impl:10s} dropout {dropout:g}: "
            + ", ".join(f"{name} {value:.3f} s" for name, value in seconds.items()), flush=True)
  return results


if __name__ == "__main__":
  main()

"""What the loop's safety nets cost: the non-finite guard and count, async saves.

The workload is the demo's model (hidden 128, 2 layers, 4 heads, FFN 512,
vocab 8,000), two tasks of 16 sequences of 64 tokens per step, AdamW, on
this machine's CPU (one device). In one process, for several rounds in
rotating order (so load from other users of the machine hits all alike):

* `plain`: the step jitted with the state donated (the loop before);
* `loop`: the loop's step (`training/sharded.py`): non-finite updates
  skipped with a select over the whole state and counted on device (the
  host reads the counts only when it logs, so never here).

Then a checkpoint of that state: how long `save` blocks the loop (async:
the copy off the device) against a save that waits for the disk.

Prints ms/step per round, medians, and `ratio <variant / plain>` lines.

  python benchmarks/loop_overhead.py               # 5 rounds of 30 steps
  python benchmarks/loop_overhead.py --rounds 2 --steps 10
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import numpy as np

from mtl_jax import sharding, weighting
from mtl_jax.config import default_config
from mtl_jax.encoders import EncoderConfig
from mtl_jax.sharing import HardSharingModel, TaskHead
from mtl_jax.tasks.kinds import Classification, Tagging
from mtl_jax.training import TrainState, make_optimizer, make_train_step
from mtl_jax.training.checkpoint import Checkpointer
from mtl_jax.training.nonfinite import NonFiniteCounter
from mtl_jax.training.sharded import create_state, jit_loop_step

KINDS = {"news": Classification(), "ner": Tagging()}


def batches(count, b=16, length=64, vocab=8000, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(count):
    mask = (np.arange(length)[None] < rng.integers(length // 2, length + 1, (b, 1))
            ).astype(np.int32)

    def task(labels):
      return {"input_ids": (rng.integers(1, vocab, (b, length)) * mask).astype(np.int32),
              "token_type_ids": np.zeros((b, length), np.int32),
              "attention_mask": mask, "labels": labels}

    tags = np.where(mask == 1, rng.integers(0, 9, (b, length)), -100).astype(np.int32)
    out.append({"news": task(rng.integers(0, 4, b).astype(np.int32)), "ner": task(tags)})
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=30)
  args = parser.parse_args()

  encoder = EncoderConfig(vocab_size=8000, hidden_size=128, num_layers=2, num_heads=4,
                          intermediate_size=512, max_position_embeddings=128)
  model = HardSharingModel(encoder, [TaskHead("news", KINDS["news"], 4),
                                     TaskHead("ner", KINDS["ner"], 9)])
  optimizer, _ = make_optimizer(default_config().optimizer, total_steps=1000)
  balance = weighting.from_spec("equal", num_tasks=2)
  layout = sharding.Layout(sharding.make_mesh({"data": 1}))

  def init(pretrained=None):
    del pretrained
    return TrainState.create(model.init(jax.random.PRNGKey(0)), optimizer, balance.init(2),
                             jax.random.PRNGKey(1))

  shapes = jax.eval_shape(init)
  shardings = layout.state_shardings(shapes, model.logical_axes())
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          shapes, shardings)
  train_step = make_train_step(model, balance, optimizer)

  def plain_step(state, counts, batch):  # the loop step's signature; counts pass through
    state, metrics = train_step(state, batch, jax.random.fold_in(state.rng, state.step))
    return state, counts, metrics

  steps = {"plain": jax.jit(plain_step, donate_argnums=0),
           "loop": jit_loop_step(train_step, abstract, layout, max_nonfinite_in_a_row=100)}
  data = [layout.put_batch(b) for b in batches(args.steps)]

  def run(name):
    step = steps[name]
    state, counter = create_state(init, abstract, layout), NonFiniteCounter(100)
    state, counter.counts, _ = step(state, counter.counts, data[0])  # compile / warm up
    jax.block_until_ready(state)
    start = time.perf_counter()
    for batch in data:
      state, counter.counts, _ = step(state, counter.counts, batch)
    jax.block_until_ready(state)
    elapsed = time.perf_counter() - start
    counter.check()  # what the loop reads when it logs, after the timed steps
    return elapsed / len(data) * 1e3, state

  names = list(steps)
  times = {name: [] for name in names}
  for r in range(args.rounds):
    order = names[r % len(names):] + names[:r % len(names)]
    for name in order:
      ms, state = run(name)
      times[name].append(ms)
    print(f"round {r}: " + ", ".join(f"{n} {times[n][-1]:.1f} ms/step" for n in names),
          flush=True)
  median = {n: float(np.median(t)) for n, t in times.items()}
  print("median ms/step: " + ", ".join(f"{n} {v:.1f}" for n, v in median.items()))
  for name in names[1:]:
    print(f"ratio {name} / plain {median[name] / median['plain']:.3f}")

  nbytes = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
  blocked, waited = [], []
  with tempfile.TemporaryDirectory() as directory:
    checkpointer = Checkpointer(directory, max_to_keep=1)
    for step in range(1, args.rounds + 2):
      start = time.perf_counter()
      checkpointer.save(step, state, {"streams": {}})
      blocked.append(time.perf_counter() - start)
      checkpointer.wait()
      waited.append(time.perf_counter() - start)
    checkpointer.close()
  # The first save sets orbax up; leave it out.
  print(f"checkpoint of {nbytes / 2**20:.1f} MiB: save blocks the loop "
        f"{np.median(blocked[1:]) * 1e3:.0f} ms, until on disk "
        f"{np.median(waited[1:]) * 1e3:.0f} ms (medians of {len(blocked) - 1}); "
        f"ratio blocked / on disk {np.median(blocked[1:]) / np.median(waited[1:]):.3f}")


if __name__ == "__main__":
  main()

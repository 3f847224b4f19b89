"""Real NLP batches: input-pipeline throughput, length bucketing, compiles per run.

On CoNLL-2003 NER + AG News (the shared data), with the MiniLM tokenizer:

1. Tokenization (read + tokenize + align labels) and batching (bucketed,
   padded `joint_batches`, with and without the background `Prefetcher`)
   throughput in sentences/s.
2. How the joint steps fall into length buckets, and the share of real
   tokens among the padded ones under three policies: everything padded to
   128, one common bucket per step (ours: `joint_batches`), and finer buckets.
3. The real train step (MiniLM-L6 shape, dropout 0.1) timed at each bucket
   length, counting XLA compilations (`jax.monitoring`): one per length, none
   after; then steps/s of each policy on the real length mix, and the
   sentences/s the step consumes against what the pipeline delivers.

  python benchmarks/pipeline_speed.py                 # all of it
  python benchmarks/pipeline_speed.py --no-steps      # pipeline and bucketing only
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def load_tasks(data: str, model: str, max_length: int):
  from mtl_jax.tasks import TaskRegistry, tokenization
  tokenizer = tokenization.load_tokenizer(model)
  tasks = {"ag_news": TaskRegistry.get("ag_news", data_dir=os.path.join(data, "ag_news_subset"),
                                       max_length=max_length),
           "conll2003_ner": TaskRegistry.get("conll2003_ner",
                                             data_dir=os.path.join(data, "conll2003"),
                                             max_length=max_length)}
  splits, sentences, seconds = {}, 0, 0.0
  for name, task in tasks.items():
    raw = task.read("train")
    labels = task.label_vocab(raw)
    start = time.perf_counter()
    splits[name] = task.load("train", tokenizer, labels, raw=raw)
    elapsed = time.perf_counter() - start
    sentences, seconds = sentences + len(splits[name]), seconds + elapsed
    print(f"tokenize {name}: {len(splits[name])} sentences in {elapsed:.2f} s = "
          f"{len(splits[name]) / elapsed:,.0f} sentences/s (mean "
          f"{splits[name].lengths.mean():.1f} sub-words, max {splits[name].lengths.max()})")
  return splits, sentences / seconds


def _streams(splits, batch_per_task: int, buckets):
  from mtl_jax.tasks.batching import TaskStream, joint_batches
  return joint_batches({n: TaskStream(s, batch_per_task, buckets, seed=k)
                        for k, (n, s) in enumerate(sorted(splits.items()))})


def batching_rate(splits, batch_per_task: int, buckets, steps: int, prefetch: bool
                  ) -> float:
  """Sentences/s of `joint_batches` (optionally through the Prefetcher)."""
  from mtl_jax.training.prefetch import Prefetcher
  batches = _streams(splits, batch_per_task, buckets)
  if prefetch:
    batches = Prefetcher(batches, size=2)
  start = time.perf_counter()
  for _ in range(steps):
    next(batches)
  elapsed = time.perf_counter() - start
  if prefetch:
    batches.close()
  return steps * batch_per_task * len(splits) / elapsed


def length_mix(splits, batch_per_task: int, buckets, steps: int):
  """(steps per common length, real-token share) of `steps` real joint batches."""
  batches = _streams(splits, batch_per_task, buckets)
  mix = collections.Counter()
  real = padded = 0
  for _ in range(steps):
    batch = next(batches)
    for arrays in batch.values():
      mask = arrays["attention_mask"]
      real += int(mask.sum())
      padded += mask.size
    mix[mask.shape[1]] += 1
  return mix, real / padded, real


def step_times(lengths, batch_per_task: int, steps: int):
  """The real step at each length: (median seconds, compiles) per length."""
  import jax
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  from step_speed import encoder_config, optimizer_config, NUM_CLASSES, NUM_TAGS
  from mtl_jax import weighting as weighting_lib
  from mtl_jax.sharing import HardSharingModel, TaskHead
  from mtl_jax.tasks.kinds import Classification, Tagging
  from mtl_jax.training import TrainState, make_optimizer, make_train_step

  compiles = collections.Counter()

  def count(event, duration, fun_name=None, **kwargs):
    del duration, kwargs
    if event == COMPILE_EVENT and fun_name == "jit(loop_step)":
      compiles["loop_step"] += 1

  jax.monitoring.register_event_duration_secs_listener(count)
  kinds = {"ner": Tagging(), "news": Classification()}
  model = HardSharingModel(encoder_config(0.1), [
      TaskHead("ner", kinds["ner"], NUM_TAGS), TaskHead("news", kinds["news"], NUM_CLASSES)])
  optimizer, _ = make_optimizer(optimizer_config(), 1000)
  weighting = weighting_lib.from_spec("equal", num_tasks=2)
  step = jax.jit(make_train_step(model, weighting, optimizer), donate_argnums=0)
  state = TrainState.create(model.init(jax.random.PRNGKey(0)), optimizer, weighting.init(2),
                            jax.random.PRNGKey(1))
  from step_speed import make_batches
  results = {}
  # Twice through the lengths (warm-up + `steps` timed, then one more step):
  # the second pass must not compile again.
  for repeat in range(2):
    for length in lengths:
      before = compiles["loop_step"]
      times = []
      count_steps = steps + 1 if repeat == 0 else 1
      for i, batch in enumerate(make_batches(count_steps, batch_per_task, length)):
        start = time.perf_counter()
        state, metrics = step(state, batch, jax.random.PRNGKey(i))
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
      new = compiles["loop_step"] - before
      if repeat == 0:
        results[length] = [times[1:], new]
      else:
        results[length][0] += times
        if new:
          raise SystemExit(f"length {length} compiled again after warm-up ({new}x)")
      print(f"  step at length {length} (pass {repeat + 1}): "
            + " ".join(f"{t:.2f}" for t in times) + f" s, {new} compilation(s)", flush=True)
  return {length: (float(np.median(times)), new) for length, (times, new) in results.items()}


def main(args):
  sys.path.insert(0, REPO)
  buckets, fine = tuple(args.buckets), tuple(args.fine_buckets)
  print(f"## input pipeline (CoNLL-2003 NER + AG News train, MiniLM tokenizer, "
        f"{args.batch_per_task} per task)")
  splits, tokenize_rate = load_tasks(args.data, args.model, buckets[-1])
  plain = batching_rate(splits, args.batch_per_task, buckets, args.batch_steps, False)
  ahead = batching_rate(splits, args.batch_per_task, buckets, args.batch_steps, True)
  print(f"batching (joint_batches): {plain:,.0f} sentences/s; through the Prefetcher "
        f"(+ device_put): {ahead:,.0f} sentences/s")

  print("\n## bucketing")
  mix, share, real = length_mix(splits, args.batch_per_task, buckets, args.mix_steps)
  fine_mix, fine_share, _ = length_mix(splits, args.batch_per_task, fine, args.mix_steps)
  share_128 = real / (args.mix_steps * 2 * args.batch_per_task * buckets[-1])
  for name, counts in ((buckets, mix), (fine, fine_mix)):
    print(f"steps by common length, buckets {name}: "
          + ", ".join(f"{k}: {v / args.mix_steps:.0%}" for k, v in sorted(counts.items())))
  print(f"real tokens / padded tokens: pad to {buckets[-1]} {share_128:.0%}, common bucket "
        f"per step {share:.0%}, finer buckets {fine_share:.0%}")
  if args.no_steps:
    return

  print("\n## the real step by length (MiniLM-L6 shape, "
        f"{2 * args.batch_per_task} sequences, dropout 0.1)")
  measured = step_times(sorted(set(buckets) | set(fine)), args.batch_per_task, args.steps)
  compiles = sum(c for _, c in measured.values())
  print(f"compilations: {compiles} for {len(measured)} lengths, none after warm-up")

  def expected(mixture):
    return sum(measured[k][0] * v for k, v in mixture.items()) / sum(mixture.values())

  pad_time, joint_time, fine_time = measured[buckets[-1]][0], expected(mix), expected(fine_mix)
  print(f"steps/s: pad to {buckets[-1]} {1 / pad_time:.3f}, common bucket per step "
        f"{1 / joint_time:.3f} ({pad_time / joint_time:.2f}x), finer buckets "
        f"{1 / fine_time:.3f} ({pad_time / fine_time:.2f}x; {len(fine)} compilations "
        f"instead of {len(buckets)})")
  consumed = 2 * args.batch_per_task / joint_time
  pipeline = 1.0 / (1.0 / tokenize_rate + 1.0 / plain)
  print(f"the step consumes {consumed:,.1f} sentences/s; tokenize + batch delivers "
        f"{pipeline:,.0f} sentences/s ({pipeline / consumed:,.0f}x margin)")


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", default=os.path.join(SHARED, "data"))
  parser.add_argument("--model", default=os.path.join(SHARED, "models", "all-MiniLM-L6-v2"))
  parser.add_argument("--batch-per-task", type=int, default=16)
  parser.add_argument("--buckets", type=int, nargs="+", default=[32, 64, 128])
  parser.add_argument("--fine-buckets", type=int, nargs="+",
                      default=[16, 32, 48, 64, 96, 128])
  parser.add_argument("--batch-steps", type=int, default=500)
  parser.add_argument("--mix-steps", type=int, default=2000)
  parser.add_argument("--steps", type=int, default=2, help="timed steps per length")
  parser.add_argument("--no-steps", action="store_true")
  return parser.parse_args(argv)


if __name__ == "__main__":
  main(parse_args())

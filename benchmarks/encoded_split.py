"""Tokenized splits on disk (Arrow, `datasets.map` cache) against in-memory ragged lists.

On SST-2's 67,349 train sentences (../shared/data/glue) with the MiniLM
tokenizer, each variant in a fresh process:

* `lists`: the core's former representation: every example tokenized into
  Python lists of numpy arrays, batches gathered by list indexing.
* `arrow`: `Task.load` -> `datasets.map` into an Arrow cache file,
  memory-mapped; batches gathered by `EncodedSplit.rows` (Arrow `take`).
  Run twice: cold (tokenizes and writes the cache) and warm (reads it).

Printed: seconds to tokenize, the resident memory the tokenized split adds
(max RSS after tokenizing and batching, minus before), and the time to pad
2,000 batches of 16 (`pad_batch`), with arrow/lists ratios.

  python benchmarks/encoded_split.py [--batches 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("MTL_JAX_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
BATCH = 16
LENGTH = 64


def _max_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(variant: str, batches: int) -> dict:
  """One variant, in this process."""
  import numpy as np

  sys.path.insert(0, REPO)
  from mtl_jax.tasks import TaskRegistry, tokenization
  from mtl_jax.tasks.batching import pad_batch

  tokenizer = tokenization.load_tokenizer(os.path.join(SHARED, "models", "all-MiniLM-L6-v2"))
  task = TaskRegistry.get("glue_sst2", data_dir=os.path.join(SHARED, "data", "glue", "SST-2"),
                          max_length=LENGTH)
  raw = task.read("train")
  labels = task.label_vocab(raw)
  texts, gold = raw.column("text"), raw.column("label")
  before = _max_rss_mb()
  start = time.perf_counter()
  if variant == "lists":
    encoded = tokenization.encode_texts(tokenizer, texts, max_length=LENGTH)
    index = {label: i for i, label in enumerate(labels)}
    label_ids = [index[g] for g in gold]
    num = len(encoded.input_ids)
  else:
    split = task.load("train", tokenizer, labels, raw=raw)
    num = len(split)
  tokenize_s = time.perf_counter() - start

  rng = np.random.default_rng(0)
  picks = [rng.integers(0, num, BATCH) for _ in range(batches)]
  start = time.perf_counter()
  for indices in picks:
    if variant == "lists":  # the former pad_batch
      out = np.zeros((BATCH, LENGTH), np.int32)
      types = np.zeros((BATCH, LENGTH), np.int32)
      mask = np.zeros((BATCH, LENGTH), np.int32)
      batch_labels = np.zeros((BATCH,), np.int32)
      for row, i in enumerate(indices):
        ids = encoded.input_ids[i]
        out[row, :len(ids)] = ids
        types[row, :len(ids)] = encoded.token_type_ids[i]
        mask[row, :len(ids)] = 1
        batch_labels[row] = label_ids[i]
    else:
      pad_batch(split, indices, LENGTH, BATCH)
  batch_ms = (time.perf_counter() - start) / batches * 1e3
  # After batching: includes the arrow variant's in-memory gather arrays.
  added_mb = _max_rss_mb() - before
  return {"tokenize_s": tokenize_s, "added_mb": added_mb, "batch_ms": batch_ms,
          "examples": num}


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batches", type=int, default=2000)
  parser.add_argument("--variant", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.variant:
    print(json.dumps(_run(args.variant, args.batches)))
    return
  results = {}
  with tempfile.TemporaryDirectory() as cache:
    # A fresh datasets cache, so 'cold' really tokenizes.
    env = dict(os.environ, HF_DATASETS_CACHE=cache, JAX_PLATFORMS="cpu")
    for name, variant in (("lists", "lists"), ("arrow cold", "arrow"),
                          ("arrow warm", "arrow")):
      out = subprocess.run([sys.executable, __file__, "--variant", variant,
                            "--batches", str(args.batches)], env=env, check=True,
                           capture_output=True, text=True).stdout
      results[name] = json.loads(out.strip().splitlines()[-1])
  print(f"SST-2 train: {results['lists']['examples']:,} sentences, max_length {LENGTH}, "
        f"{args.batches} batches of {BATCH}")
  print(f"{'variant':12} {'tokenize s':>11} {'added RSS MB':>13} {'ms/batch':>9}")
  for name, r in results.items():
    print(f"{name:12} {r['tokenize_s']:11.2f} {r['added_mb']:13.1f} {r['batch_ms']:9.3f}")
  base = results["lists"]
  for name in ("arrow cold", "arrow warm"):
    r = results[name]
    print(f"{name} / lists: tokenize {r['tokenize_s'] / base['tokenize_s']:.2f}x, "
          f"added RSS {r['added_mb'] / max(base['added_mb'], 1e-9):.2f}x, "
          f"batch {r['batch_ms'] / base['batch_ms']:.2f}x")


if __name__ == "__main__":
  main()

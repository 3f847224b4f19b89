"""The data path at scale: a 1,000,000-row CSV task and a 200,000-sentence CoNLL task.

Writes both as synthetic files in a temp folder (a 5,000-word vocabulary,
texts of 8-40 words, 4 classes; sentences of 5-30 words with IOB tags), then
trains a tiny encoder from scratch on both for a few steps, each start in a
fresh `mtl-jax train` process:

* `baseline`: the same run on 1,000 rows and 1,000 sentences (the model, the
  compiles and the libraries: what the data's cost is measured beyond);
* `first`: the full files: reading, training the WordPiece vocabulary,
  tokenizing into the Arrow cache, compiling, the steps;
* `second`: the same workdir trained again for more steps: the cached start.

Printed per start: wall seconds, seconds until the data is ready (the first
"compiling the step" line), and the process's peak RSS (the kernel's
high-water mark from `wait4`, no sampler). Targets (issue 18): the first
start's peak RSS at most 2 GB above the baseline's, the second start's data
ready in under 10 s.

  python benchmarks/data_at_scale.py [--rows 1000000] [--sentences 200000]

Timing needs the machine to itself (no training beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

LABELS = ("world", "sports", "business", "science")
TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

CONFIG = """
from mtl_jax.config import default_config

def get_config(arg=None):
  c = default_config()
  c.tasks = {{
      "news": {{"kind": "classification", "source": {{"format": "csv",
                "splits": {{"train": "{data}/news.csv"}}}}}},
      "ner": {{"kind": "tagging", "source": {{"format": "conll",
               "splits": {{"train": "{data}/ner.txt"}}}}}},
  }}
  c.encoder.update(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)
  c.tokenizer.vocab_size = 8000
  c.train.update(steps=int(arg or 5), batch_size=16, buckets=(64,), log_every=5)
  c.mesh.shape.data = 1
  return c
"""


def write_data(folder: str, rows: int, sentences: int, seed: int = 0) -> None:
  """news.csv (text,label) and ner.txt (word tag lines, blank between sentences)."""
  rng = np.random.default_rng(seed)
  vocab = np.array([f"w{i}" for i in range(5000)])
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "news.csv"), "w") as f:
    f.write("text,label\n")
    for start in range(0, rows, 10_000):
      count = min(10_000, rows - start)
      lengths = rng.integers(8, 41, count)
      words = rng.integers(0, len(vocab), (count, 40))
      labels = rng.integers(0, len(LABELS), count)
      f.writelines(f"{' '.join(vocab[w[:n]])},{LABELS[y]}\n"
                   for w, n, y in zip(words, lengths, labels))
  with open(os.path.join(folder, "ner.txt"), "w") as f:
    for start in range(0, sentences, 10_000):
      count = min(10_000, sentences - start)
      lengths = rng.integers(5, 31, count)
      words = rng.integers(0, len(vocab), (count, 30))
      tags = rng.integers(0, len(TAGS), (count, 30))
      for w, n, t in zip(words, lengths, tags):
        f.write("".join(f"{vocab[a]} {TAGS[b]}\n" for a, b in zip(w[:n], t[:n])) + "\n")


def start(config_path: str, workdir: str, steps: int, cache: str) -> dict:
  """One `mtl-jax train` process: wall time, time until its data is ready, peak RSS."""
  env = {**os.environ, "HF_DATASETS_CACHE": cache}
  command = [sys.executable, "-m", "mtl_jax.cli", "train", "--no-progress",
             "--config", f"{config_path}:{steps}", "--workdir", workdir]
  began = time.time()
  process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env)
  ready = None
  for line in process.stdout:
    if ready is None and "compiling the step" in line:
      ready = time.time() - began
  _, status, usage = os.wait4(process.pid, 0)
  process.returncode = os.waitstatus_to_exitcode(status)
  if process.returncode:
    raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
  return {"seconds": round(time.time() - began, 1),
          "data_ready_seconds": None if ready is None else round(ready, 1),
          "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", type=int, default=1_000_000)
  parser.add_argument("--sentences", type=int, default=200_000)
  parser.add_argument("--keep", help="write the data and workdirs here (default: a temp dir)")
  args = parser.parse_args()
  root = args.keep or tempfile.mkdtemp(prefix="mtl_jax_scale_")
  results = {}
  for name, rows, sentences in (("baseline", 1000, 1000),
                                ("full", args.rows, args.sentences)):
    data = os.path.join(root, f"data_{name}")
    began = time.time()
    write_data(data, rows, sentences)
    print(f"{name}: wrote {rows} rows and {sentences} sentences in "
          f"{time.time() - began:.0f} s", flush=True)
    config = os.path.join(root, f"config_{name}.py")
    with open(config, "w") as f:
      f.write(CONFIG.format(data=data))
    workdir, cache = os.path.join(root, f"work_{name}"), os.path.join(root, f"cache_{name}")
    results[name] = {"first": start(config, workdir, 5, cache)}
    print(f"{name} first start: {results[name]['first']}", flush=True)
    if name == "full":
      results[name]["second"] = start(config, workdir, 10, cache)
      print(f"{name} second start: {results[name]['second']}", flush=True)
  beyond = results["full"]["first"]["peak_rss_mb"] - results["baseline"]["first"]["peak_rss_mb"]
  results["peak_rss_beyond_baseline_mb"] = round(beyond, 1)
  print(json.dumps(results, indent=2))
  print(f"peak RSS beyond the baseline {beyond:.0f} MB (target <= 2048); second start's data "
        f"ready in {results['full']['second']['data_ready_seconds']} s (target < 10)")


if __name__ == "__main__":
  main()

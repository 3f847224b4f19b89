"""Each `config.sharing.kind` through the real training loop, on tiny shapes."""

import json
import os

import jax
import numpy as np
import pytest

from mtl_jax import config as config_lib
from mtl_jax import sharing
from mtl_jax.training import run as run_lib
from mtl_jax.training import train

OPTIONS = {
    "layerwise": {"shared_layers": 1},
    "adapters": {"size": 4, "placement": "pfeiffer", "freeze_encoder": True},
    "mtl_attention": {"shared_layers": 1, "attention_size": 8},
    "cross_stitch": {"shared_layers": 0},  # two units: one per layer
    "task_embedding": {},
}


def _config(data_dir, kind):
  config = config_lib.default_config()
  config.tasks = {
      # No eval split: evaluating one task (one more compiled program) is enough here.
      "news": {"kind": "classification", "source": {"format": "csv", "splits": {
          "train": f"{data_dir}/news_train.csv"}}},
      "ner": {"kind": "tagging", "source": {"format": "conll", "splits": {
          "train": f"{data_dir}/ner_train.txt", "eval": f"{data_dir}/ner_valid.txt"}}},
  }
  config.sharing.kind = kind
  if OPTIONS[kind]:
    config.sharing[kind].update(OPTIONS[kind])
  config.encoder.update(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32)
  config.tokenizer.vocab_size = 200
  config.optimizer.update(learning_rate=3e-3, warmup_steps=0, schedule="constant")
  config.mesh.shape.data = 1  # one device: tiny batches (8 are emulated for tests/sharding)
  config.train.update(steps=4, batch_size=4, buckets=(64,), log_every=2,
                      eval_batch_size=32)
  return config_lib.resolve(config)


# "hard" runs in tests/training/test_end_to_end.py.
@pytest.mark.parametrize("kind", [k for k in sharing.ARCHITECTURES if k != "hard"])
def test_every_sharing_kind_trains_evaluates_and_reloads(kind, data_dir, tmp_path):
  workdir = str(tmp_path / kind)
  results = train(_config(data_dir, kind), workdir, progress=False)
  assert set(results) == {"ner"}
  assert 0.0 <= results["ner"]["span_f1"] <= 1.0
  log = [json.loads(line) for line in open(os.path.join(workdir, "train_log.jsonl"))]
  assert [r["step"] for r in log] == [2, 4]
  assert all(np.isfinite(r["loss"]) for r in log)

  # The workdir rebuilds the same architecture, and its checkpoint fits it.
  run = run_lib.load(workdir)
  assert type(run.model) is sharing.ARCHITECTURES[kind]
  params = run_lib.restore_params(run, workdir)
  assert sorted(params) == sorted(jax.eval_shape(run.model.init, jax.random.key(0)))

  trainable_file = os.path.join(workdir, run_lib.TRAINABLE_FILE)
  assert os.path.exists(trainable_file) == (kind == "adapters")
  if kind == "adapters":
    loaded = sharing.load_trainable(trainable_file, run.model)
    restored = run.model.with_encoder(loaded, params["encoder"])
    jax.tree.map(np.testing.assert_array_equal, restored, params)

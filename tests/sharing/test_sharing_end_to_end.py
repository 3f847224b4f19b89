"""Each `config.sharing.kind` through the real training loop, on tiny shapes."""

import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from mtl_jax import cli
from mtl_jax import config as config_lib
from mtl_jax import sharing
from mtl_jax.encoders import Encoder, EncoderConfig, export_pretrained, load_pretrained
from mtl_jax.tasks import tokenization
from mtl_jax.training import run as run_lib
from mtl_jax.training import train

OPTIONS = {
    "layerwise": {"shared_layers": 1},
    "adapters": {"size": 4, "placement": "pfeiffer", "freeze_encoder": True},
    "mtl_attention": {"shared_layers": 1, "attention_size": 8},
    "cross_stitch": {"shared_layers": 0},  # two units: one per layer
    "task_embedding": {},
    "mmoe": {"shared_layers": 1, "num_experts": 2},
    "cgc": {"shared_layers": 1, "shared_experts": 1, "task_experts": 1},
    "ple": {"shared_layers": 0, "levels": 2},  # one layer per level
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


def _reevaluated(workdir):
  """The metrics `mtl-jax eval` computes from the workdir's checkpoint."""
  assert cli.main(["eval", "--workdir", workdir]) == 0
  return json.loads(open(os.path.join(workdir, "metrics.json")).read())


# "hard" runs in tests/training/test_end_to_end.py.
@pytest.mark.parametrize("kind", [k for k in sharing.ARCHITECTURES if k != "hard"])
def test_every_sharing_kind_trains_evaluates_and_reloads(kind, data_dir, tmp_path):
  workdir = str(tmp_path / kind)
  results = train(_config(data_dir, kind), workdir, progress=False)
  assert set(results) == {"ner"}
  # The reloaded architecture predicts what the trained one did.
  assert _reevaluated(workdir)["ner"] == pytest.approx(results["ner"])
  log = [json.loads(line) for line in open(os.path.join(workdir, "train_log.jsonl"))
         if "loss" in json.loads(line)]
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


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, data_dir):
  """A tiny 'pretrained' encoder in the Hugging Face layout, with its tokenizer."""
  path = tmp_path_factory.mktemp("pretrained")
  texts = [line for name in ("news_train.csv", "ner_train.txt")
           for line in (data_dir / name).read_text().splitlines()]
  tokenizer = tokenization.train_wordpiece(texts, vocab_size=200)
  config = EncoderConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=16, num_layers=2,
                         num_heads=2, intermediate_size=32, max_position_embeddings=80)
  ids = np.zeros((1, 4), np.int32)
  params = nn.unbox(Encoder(config).init(jax.random.key(3), ids, ids, ids))["params"]
  export_pretrained(path, config, params)
  tokenization.save_tokenizer(tokenizer, path)
  return str(path)


# The kinds whose params["encoder"] holds only part of the pretrained encoder
# (the rest is copied into every task): the run lays the checkpoint out by the
# whole encoder's axes before its jitted init splits it.
@pytest.mark.parametrize("kind", ["layerwise", "mtl_attention", "cross_stitch"])
def test_kinds_that_split_the_encoder_train_from_a_pretrained_checkpoint(
    kind, data_dir, tiny_checkpoint, tmp_path):
  config = _config(data_dir, kind)
  config.encoder.pretrained = tiny_checkpoint
  # No update: the saved params are the state the run's jitted init built.
  config.optimizer.learning_rate = 0.0
  config.train.steps = 2
  workdir = str(tmp_path / kind)
  results = train(config, workdir, progress=False)
  assert _reevaluated(workdir)["ner"] == pytest.approx(results["ner"])
  run = run_lib.load(workdir)
  params = run_lib.restore_params(run, workdir)
  _, checkpoint = load_pretrained(tiny_checkpoint)
  # The shared part and every task's copy of the upper layers are the checkpoint's.
  jax.tree.map(np.testing.assert_array_equal, params["encoder"]["embeddings"],
               checkpoint["embeddings"])
  for task in ("ner", "news"):
    jax.tree.map(np.testing.assert_array_equal, params["task_encoders"][task]["layer_1"],
                 checkpoint["layer_1"])


def test_every_expert_starts_as_a_copy_of_its_pretrained_layers(data_dir, tiny_checkpoint,
                                                                tmp_path):
  config = _config(data_dir, "ple")
  config.encoder.pretrained = tiny_checkpoint
  config.optimizer.learning_rate = 0.0
  config.train.steps = 2
  workdir = str(tmp_path / "ple")
  train(config, workdir, progress=False)
  params = run_lib.restore_params(run_lib.load(workdir), workdir)
  _, checkpoint = load_pretrained(tiny_checkpoint)
  jax.tree.map(np.testing.assert_array_equal, params["encoder"]["embeddings"],
               checkpoint["embeddings"])
  for level, layer in (("level_0", "layer_0"), ("level_1", "layer_1")):
    experts = [params["encoder"]["experts"][level]["expert_0"]] + [
        params["task_experts"][task][level]["expert_0"] for task in ("ner", "news")]
    for expert in experts:
      assert list(expert) == [layer]
      jax.tree.map(np.testing.assert_array_equal, expert[layer], checkpoint[layer])

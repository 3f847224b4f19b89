"""A run over the new kinds on tiny shapes: a GLUE mixture (pairs, regression, MNLI's
two dev sets) and a multi-label task -> metrics -> predict from files, stdin and Python."""

import io
import json

import numpy as np
import pytest

from mtl_jax import Predictor, cli

CONFIG = """
from mtl_jax.config import default_config

def get_config(arg=None):
  c = default_config()
  c.mixture = "glue(data_dir='{glue}', tasks=('rte', 'stsb', 'mnli'))"
  c.tasks = {{
      "glue_stsb": {{"kind_options": {{"range": (0, 5), "normalize": True}}}},
      "topics": {{"kind": "multilabel", "source": {{"format": "jsonl", "splits": {{
          "train": "{topics}", "eval": "{topics}"}}}}}},
  }}
  c.encoder.update(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
  c.tokenizer.update(vocab_size=300)
  c.optimizer.update(learning_rate=3e-3, warmup_steps=2, schedule="constant")
  c.mesh.shape.data = 1  # one device: tiny batches (8 are emulated for tests/sharding)
  c.train.update(steps=4, batch_size=4, buckets=(64,), log_every=2, eval_batch_size=8)
  return c
"""
TOPICS = [("stocks fell and the team lost", ["business", "sport"]),
          ("the team won the cup", ["sport"]),
          ("shares rose on the news", ["business"]),
          ("a quiet day", [])]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
  root = tmp_path_factory.mktemp("glue_run")
  topics = root / "topics.jsonl"
  topics.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in TOPICS))
  config = root / "glue.py"
  config.write_text(CONFIG.format(glue=data_dir / "glue", topics=topics))
  workdir = root / "work"
  assert cli.main(["train", "--config", str(config), "--workdir", str(workdir),
                   "--no-progress"]) == 0
  return workdir


def test_metrics_of_every_kind_and_the_glue_score(trained, capsys):
  metrics = json.loads((trained / "metrics.json").read_text())
  assert set(metrics["glue_rte"]) == {"accuracy"}
  assert set(metrics["glue_stsb"]) == {"pearson", "spearman"}
  assert set(metrics["glue_mnli"]) == {"accuracy_matched", "accuracy_mismatched"}
  assert set(metrics["topics"]) == {"micro_f1", "macro_f1", "subset_accuracy"}
  tasks = json.loads((trained / "tasks.json").read_text())
  # Rates: the GLUE tasks' train sizes (4 each); 'topics' is outside the mixture.
  assert sum(t["rate"] for t in tasks.values()) == pytest.approx(1.0)
  assert tasks["glue_rte"]["rate"] == pytest.approx(tasks["glue_mnli"]["rate"])
  assert tasks["glue_stsb"]["labels"] == ["score"]
  log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
  assert all(np.isfinite(list(r["losses"].values())).all() for r in log if "losses" in r)
  assert cli.main(["eval", "--workdir", str(trained)]) == 0
  assert "GLUE score over 3 of 9 tasks" in capsys.readouterr().out


def test_predict_pairs_from_two_columns_agrees_with_eval(trained, tmp_path, capsys,
                                                         data_dir):
  rows = [line.split("\t") for line in
          (data_dir / "glue" / "RTE" / "dev.tsv").read_text().splitlines()[1:]]
  inputs = tmp_path / "pairs.tsv"
  inputs.write_text("".join(f"{r[1]}\t{r[2]}\n" for r in rows))
  assert cli.main(["predict", "--workdir", str(trained), "--task", "glue_rte",
                   "--input", str(inputs)]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert [line.split("\t")[1:] for line in lines] == [r[1:3] for r in rows]
  predicted = [line.split("\t")[0] for line in lines]
  accuracy = np.mean([p == r[3] for p, r in zip(predicted, rows)])
  metrics = json.loads((trained / "metrics.json").read_text())
  assert accuracy == pytest.approx(metrics["glue_rte"]["accuracy"])


def test_predict_scores_from_stdin_and_python(trained, monkeypatch, capsys):
  # As a real stdin: text over bytes (predict reads the bytes, naming bad ones).
  monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(
      "A dog runs.\tA dog is running.\n".encode())))
  assert cli.main(["predict", "--workdir", str(trained), "--task", "glue_stsb"]) == 0
  shown = capsys.readouterr().out.split("\t")[0]
  predictor = Predictor.from_workdir(str(trained))
  [score] = predictor.predict("glue_stsb", [("A dog runs.", "A dog is running.")])
  assert isinstance(score, float) and shown == f"{score:.4f}"
  [labels] = predictor.predict("topics", ["the team won"])
  assert set(labels) <= {"business", "sport"}


def test_predict_pair_without_second_text_is_a_clear_error(trained, tmp_path, capsys):
  inputs = tmp_path / "bad.txt"
  inputs.write_text("A man sleeps.\tNobody sleeps.\nOnly one sentence here.\n")
  assert cli.main(["predict", "--workdir", str(trained), "--task", "glue_rte",
                   "--input", str(inputs)]) == 2
  assert ("task glue_rte: input 2: a sentence-pair task needs two texts"
          in capsys.readouterr().err)

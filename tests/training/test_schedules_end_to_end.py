"""A tiny run with a seq2seq task, a sampled schedule and relatedness measurements."""

import json

import pytest

from mtl_jax import cli

CONFIG = """
from mtl_jax.config import default_config

def get_config(arg=None):
  c = default_config()
  c.tasks = {{
      "news": {{"kind": "classification",
               "source": {{"format": "csv", "splits": {{
                   "train": "{data}/news_train.csv", "eval": "{data}/news_dev.csv"}}}}}},
      "copy": {{"kind": "seq2seq", "max_target_length": 6, "head": {{"num_layers": 1}},
               "source": {{"format": "csv", "columns": {{"text": "source"}}, "splits": {{
                   "train": "{data}/copy_train.csv", "eval": "{data}/copy_dev.csv"}}}}}},
  }}
  c.encoder.update(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
  c.tokenizer.vocab_size = 150
  c.optimizer.update(learning_rate=3e-3, warmup_steps=2, schedule="constant")
  c.train.update(steps=12, batch_size=4, buckets=(16,), log_every=2, eval_batch_size=8)
  c.schedule = "temperature(temperature=2)"
  c.relatedness.update(weight=0.1, measure_every=4)
  return c
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
  root = tmp_path_factory.mktemp("run")
  config = root / "tiny.py"
  config.write_text(CONFIG.format(data=data_dir))
  workdir = root / "work"
  assert cli.main(["train", "--config", str(config), "--workdir", str(workdir),
                   "--no-progress"]) == 0
  return workdir


def test_seq2seq_trains_and_reports_its_metrics(trained):
  metrics = json.loads((trained / "metrics.json").read_text())
  assert set(metrics["copy"]) == {"exact_match", "token_f1", "bleu"}
  assert set(metrics["news"]) == {"accuracy", "macro_f1"}


def test_schedule_trains_one_task_per_step_and_logs_means_over_present_steps(trained):
  log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
  assert [r["step"] for r in log] == [2, 4, 6, 8, 10, 12]
  assert all(sorted(r["weights"].values()) == [0.0, 1.0] for r in log)
  # A task absent from both steps since the last log has no loss to report.
  losses = [v for r in log for v in r["losses"].values()]
  assert all(v is None or v > 0 for v in losses)
  assert all("regularizer" in r for r in log)


def test_relatedness_is_measured_and_drawn(trained):
  saved = json.loads((trained / "relatedness.json").read_text())
  assert saved["tasks"] == ["copy", "news"]
  assert [m["step"] for m in saved["measurements"]] == [4, 8, 12]
  assert len(saved["gradient_cosine"]) == len(saved["lookahead_affinity"]) == 2
  assert saved["regularizer_relatedness"] == [[0.0, 1.0], [1.0, 0.0]]
  assert (trained / "relatedness.png").stat().st_size > 0


def test_predict_generates_text(trained, tmp_path, capsys):
  inputs = tmp_path / "in.txt"
  inputs.write_text("red cat\nsun moon tree\n")
  assert cli.main(["predict", "--workdir", str(trained), "--task", "copy",
                   "--input", str(inputs)]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert [line.split("\t")[1] for line in lines] == ["red cat", "sun moon tree"]
  assert all(len(line.split("\t")[0].split()) <= 6 for line in lines)

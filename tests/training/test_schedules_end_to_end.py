"""A tiny run through the Python API: a seq2seq task, a sampled schedule, relatedness."""

import csv
import json

import pytest

import mtl_jax
from mtl_jax import cli
from mtl_jax.training.schedules import make_schedule


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
  def csv(train, dev, **source):
    return {"format": "csv", "splits": {"train": str(data_dir / train),
                                        "eval": str(data_dir / dev)}, **source}

  config = mtl_jax.default_config()
  config.tasks = {
      "news": {"kind": "classification", "source": csv("news_train.csv", "news_dev.csv")},
      "copy": {"kind": "seq2seq", "kind_options": {"max_target_length": 6},
               "head": {"num_layers": 1},
               "source": csv("copy_train.csv", "copy_dev.csv", columns={"text": "source"})},
  }
  config.encoder.update(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
  config.tokenizer.vocab_size = 150
  config.optimizer.update(learning_rate=3e-3, warmup_steps=2, schedule="constant")
  config.train.update(steps=12, batch_size=8, buckets=(16,), log_every=2, eval_batch_size=8)
  config.schedule = "temperature(temperature=2)"
  config.relatedness.update(weight=0.1, measure_every=4)
  workdir = tmp_path_factory.mktemp("run") / "work"
  results = mtl_jax.train(mtl_jax.resolve(config), str(workdir), progress=False)
  return workdir, results


def test_seq2seq_trains_and_reports_its_metrics(trained):
  workdir, results = trained
  assert set(results["copy"]) == {"exact_match", "token_f1", "bleu"}
  assert set(results["news"]) == {"accuracy", "macro_f1"}
  # The checkpoint, evaluated again by `mtl-jax eval`, gives the run's metrics.
  assert cli.main(["eval", "--workdir", str(workdir)]) == 0
  again = json.loads((workdir / "metrics.json").read_text())
  assert again.keys() == results.keys()
  for task, values in results.items():
    assert again[task] == pytest.approx(values)


def _train_rows(path):
  with open(path) as f:
    return sum(1 for _ in csv.DictReader(f))


def test_schedule_trains_one_task_per_step_and_logs_means_over_present_steps(trained, data_dir):
  workdir, _ = trained
  log = [json.loads(line) for line in (workdir / "train_log.jsonl").read_text().splitlines()
         if "loss" in json.loads(line)]
  assert [r["step"] for r in log] == [2, 4, 6, 8, 10, 12]
  # The schedule the run drew (the same pure function of its seed and the tasks' sizes).
  schedule = make_schedule("temperature(temperature=2)", ("copy", "news"),
                           {"copy": _train_rows(data_dir / "copy_train.csv"),
                            "news": _train_rows(data_dir / "news_train.csv")}, seed=0)
  for record in log:
    steps = (record["step"] - 2, record["step"] - 1)  # the two steps since the last log
    present = {name: [bool(schedule.present(s)[k]) for s in steps]
               for k, name in enumerate(("copy", "news"))}
    # The logged weights are the last step's: one task, the one the schedule drew.
    assert record["weights"] == {n: float(p[-1]) for n, p in present.items()}
    for name, flags in present.items():
      # A loss where the task took part in a step since the last log, none where it did not.
      assert (record["losses"][name] is None) == (not any(flags)), (record, flags)
  assert all(r["regularizer"] is not None for r in log)


def test_relatedness_is_measured_and_drawn(trained):
  workdir, _ = trained
  saved = json.loads((workdir / "relatedness.json").read_text())
  assert saved["tasks"] == ["copy", "news"]
  assert [m["step"] for m in saved["measurements"]] == [4, 8, 12]
  assert len(saved["gradient_cosine"]) == len(saved["lookahead_affinity"]) == 2
  assert saved["regularizer_relatedness"] == [[0.0, 1.0], [1.0, 0.0]]
  assert (workdir / "relatedness.png").stat().st_size > 0


def test_predict_generates_text(trained):
  workdir, _ = trained
  predictor = mtl_jax.Predictor.from_workdir(str(workdir))
  texts = predictor.predict("copy", ["red cat", "sun moon tree"])
  assert len(texts) == 2 and all(isinstance(t, str) and len(t.split()) <= 6 for t in texts)

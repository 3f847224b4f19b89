"""A whole run on tiny shapes: train -> metrics.json -> eval -> predict, through the CLI."""

import csv
import json

import jax
import numpy as np
import pytest

import mtl_jax
from mtl_jax import cli

from helpers import RUN_CONFIG

CONFIG = RUN_CONFIG


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
  root = tmp_path_factory.mktemp("run")
  config = root / "tiny.py"
  config.write_text(CONFIG.format(data=data_dir))
  workdir = root / "work"
  assert cli.main(["train", "--config", str(config), "--workdir", str(workdir),
                   "--no-progress"]) == 0
  return config, workdir


def test_train_writes_metrics_and_learns(trained):
  _, workdir = trained
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert set(metrics) == {"news", "ner"}
  assert metrics["news"]["accuracy"] > 0.5  # 4 balanced classes: chance is 0.25
  assert metrics["ner"]["span_f1"] > 0.3
  log = [json.loads(line) for line in (workdir / "train_log.jsonl").read_text().splitlines()]
  steps = [record for record in log if "loss" in record]
  assert steps[-1]["step"] == 30
  assert steps[-1]["losses"]["news"] < steps[0]["losses"]["news"]
  # The last evaluation (the final one, which metrics.json holds) is logged too.
  assert log[-1] == {"step": 30, "eval": json.loads((workdir / "metrics.json").read_text())}


def test_eval_reproduces_the_training_metrics(trained, capsys):
  _, workdir = trained
  before = json.loads((workdir / "metrics.json").read_text())
  assert cli.main(["eval", "--workdir", str(workdir)]) == 0
  after = json.loads((workdir / "metrics.json").read_text())
  assert after.keys() == before.keys()
  for task in before:
    assert after[task] == pytest.approx(before[task])
  assert "accuracy" in capsys.readouterr().out


def test_predict_agrees_with_eval(trained, tmp_path, capsys, data_dir):
  _, workdir = trained
  rows = list(csv.DictReader(open(data_dir / "news_dev.csv")))
  inputs = tmp_path / "in.txt"
  inputs.write_text("".join(row["text"] + "\n" for row in rows))
  assert cli.main(["predict", "--workdir", str(workdir), "--task", "news",
                   "--input", str(inputs)]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert [line.split("\t")[1] for line in lines] == [row["text"] for row in rows]
  predicted = [line.split("\t")[0] for line in lines]
  accuracy = sum(p == row["label"] for p, row in zip(predicted, rows)) / len(rows)
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert accuracy == pytest.approx(metrics["news"]["accuracy"])


def test_predict_tags_one_per_word(trained, tmp_path, capsys):
  _, workdir = trained
  inputs = tmp_path / "in.txt"
  inputs.write_text("Maria visited Paris on Monday .\n")
  assert cli.main(["predict", "--workdir", str(workdir), "--task", "ner",
                   "--input", str(inputs)]) == 0
  tags = capsys.readouterr().out.split("\t")[0].split()
  assert len(tags) == 6


def test_training_further_resumes_from_the_checkpoint(trained, tmp_path, capsys):
  config, workdir = trained
  assert cli.main(["train", "--config", f"{config}:40", "--workdir", str(workdir),
                   "--no-progress"]) == 0
  log = [json.loads(line) for line in (workdir / "train_log.jsonl").read_text().splitlines()]
  steps = [r["step"] for r in log if "loss" in r]
  assert steps == [10, 20, 30, 40]
  out = capsys.readouterr().out
  assert "resuming from step 30" in out
  # Each new length bucket says it compiles (the buckets are 16 and 32).
  compiling = [line for line in out.splitlines() if line.startswith("compiling the step")]
  assert 1 <= len(compiling) <= 2
  for record in log:
    if "loss" in record:
      assert record["seconds_per_step"] > 0
      # Both tasks' batches of 8 in every step.
      assert record["examples_per_second"] == pytest.approx(16 / record["seconds_per_step"],
                                                            rel=0.05)


def test_bad_config_key_is_a_clear_cli_error(trained, tmp_path, capsys):
  config, _ = trained
  code = cli.main(["train", "--config", str(config), "--workdir", str(tmp_path / "w"),
                   "--set", "train.stpes=3"])
  assert code == 2
  assert "unknown config key 'train.stpes'" in capsys.readouterr().err


def test_unknown_task_in_predict(trained, capsys, tmp_path):
  _, workdir = trained
  (tmp_path / "in.txt").write_text("x\n")
  assert cli.main(["predict", "--workdir", str(workdir), "--task", "nope",
                   "--input", str(tmp_path / "in.txt")]) == 2
  assert "no task 'nope'" in capsys.readouterr().err


def test_settings_can_be_chosen_on_a_heldout_slice_of_train(trained, tmp_path, data_dir):
  """`train.eval_split=heldout` scores the source's `holdout` slice, which train never sees."""
  from mtl_jax.tasks import HELDOUT, Source, read_split

  config, _ = trained
  workdir = tmp_path / "heldout"
  assert cli.main(["train", "--config", f"{config}:4", "--workdir", str(workdir),
                   "--no-progress", "--set", "tasks.news.source.holdout=0.25",
                   "--set", "train.eval_split=heldout"]) == 0
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert set(metrics) == {"news"}  # ner has no holdout: no evaluation
  source = Source("csv", {"train": str(data_dir / "news_train.csv")}, holdout=0.25)
  heldout = read_split(source, HELDOUT, ("text", "label"))
  predicted = mtl_jax.Predictor.from_workdir(str(workdir)).predict("news",
                                                                  heldout.column("text"))
  accuracy = np.mean([p == g for p, g in zip(predicted, heldout.column("label"))])
  assert metrics["news"]["accuracy"] == pytest.approx(accuracy)
  assert cli.main(["train", "--config", f"{config}:4", "--workdir", str(tmp_path / "none"),
                   "--no-progress", "--set", "train.eval_split=heldout"]) == 2


@pytest.mark.parametrize("setting, message", [
    ("train.steps=-5", "train.steps must be an integer >= 1, got -5"),
    ("train.batch_size=0", "train.batch_size must be an integer >= 1, got 0"),
    ("train.log_every=0", "train.log_every must be an integer >= 1, got 0"),
    ("tasks.news.kind=clasification", "unknown task kind 'clasification'"),
    ("tasks.news.metrics=['acuracy']", "unknown metric(s) ['acuracy']"),
    ("tasks.news.source.splits.train=/no/such.csv", "task news: no such file for split train"),
    ("sharing.kind=hardd", "unknown sharing.kind 'hardd'"),
    ("train.token_buckets=-1", "train.token_buckets must be an integer >= 0, got -1"),
    # The tests' 8 emulated devices: one buffer of a step's tokens has no batch axis to split.
    ("train.token_buckets=4", "train.token_buckets (4) needs a single device; this mesh has 8"),
    ("balancing.method=pcgrd", "unknown balancing method 'pcgrd'"),
    # Found only when the data is read: the half-made workdir is removed.
    ("tasks.news.source.splits.train={data}/bad/latin1_after_8kb.csv",
     "task news: {data}/bad/latin1_after_8kb.csv: line 402: byte 0xe9 at column 4"),
    ("tasks.news.source.splits.train={data}/bad/header_only.csv", "no rows (only a header)"),
])
def test_a_bad_config_leaves_no_workdir_behind(trained, tmp_path, capsys, data_dir, setting,
                                               message):
  config, _ = trained
  workdir = tmp_path / "w"
  assert cli.main(["train", "--config", str(config), "--workdir", str(workdir),
                   "--set", setting.format(data=data_dir)]) == 2
  error = capsys.readouterr().err
  assert message.format(data=data_dir) in error
  assert "Traceback" not in error  # one clear line, no background thread's traceback
  assert not workdir.exists()


def test_predict_jsonl_keeps_one_line_per_input_with_probabilities(trained, tmp_path, capsys):
  _, workdir = trained
  inputs = tmp_path / "in.txt"
  inputs.write_text("Stocks rally as the Fed holds rates.\n\nThe team won the final.\n")
  assert cli.main(["predict", "--workdir", str(workdir), "--task", "news", "--input",
                   str(inputs), "--format", "jsonl", "--batch-size", "8"]) == 0
  rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [r["input"] for r in rows] == inputs.read_text().splitlines()
  assert rows[1] == {"input": "", "prediction": None, "scores": None}
  for row in (rows[0], rows[2]):
    assert sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert row["prediction"] == max(row["scores"], key=row["scores"].get)
  # The text format keeps the empty line too.
  assert cli.main(["predict", "--workdir", str(workdir), "--task", "news", "--input",
                   str(inputs)]) == 0
  lines = capsys.readouterr().out.split("\n")
  assert len(lines) == 4 and lines[1] == "" and lines[3] == ""
  # Tagging: a tag and a {tag: probability} per word, from the Python API.
  predictor = mtl_jax.Predictor.from_workdir(str(workdir))
  ((tags, scores),) = predictor.predict("ner", ["Maria visited Paris"], scores=True)
  assert len(tags) == len(scores) == 3
  assert [max(s, key=s.get) for s in scores] == tags


def test_eval_scores_any_split_the_tasks_define(trained, tmp_path, data_dir, capsys):
  config, _ = trained
  workdir = tmp_path / "with_test"
  assert cli.main(["train", "--config", f"{config}:4", "--workdir", str(workdir),
                   "--no-progress", "--set",
                   f"tasks.ner.source.splits.test={data_dir / 'ner_valid.txt'}"]) == 0
  # Training scored the declared test split once, after its last step.
  scored_by_train = json.loads((workdir / "metrics_test.json").read_text())
  (workdir / "metrics_test.json").unlink()
  assert cli.main(["eval", "--workdir", str(workdir), "--split", "test"]) == 0
  on_test = json.loads((workdir / "metrics_test.json").read_text())
  assert on_test == scored_by_train
  assert set(on_test) == {"ner"}  # news has no test split: skipped
  # The test file is the eval file here: the same scores, through either split.
  assert on_test["ner"] == pytest.approx(json.loads((workdir / "metrics.json").read_text())["ner"])
  assert mtl_jax.evaluate(str(workdir), split="test") == on_test
  capsys.readouterr()
  assert cli.main(["eval", "--workdir", str(workdir), "--split", "tset"]) == 2
  error = capsys.readouterr().err
  assert "has a split 'tset'; the tasks' splits: eval, test" in error


def test_a_task_can_take_its_own_batch_size(trained, tmp_path):
  config, _ = trained
  workdir = tmp_path / "sizes"
  assert cli.main(["train", "--config", f"{config}:10", "--workdir", str(workdir),
                   "--no-progress", "--set", "tasks.news.batch_size=16"]) == 0
  (record,) = [json.loads(line) for line in (workdir / "train_log.jsonl").read_text().splitlines()
               if "loss" in json.loads(line)]
  # news 16 + ner 8 examples per step (each a multiple of the 8 emulated devices).
  assert record["examples_per_second"] == pytest.approx(24 / record["seconds_per_step"], rel=0.05)
  with pytest.raises(ValueError, match="batch_size must be a positive integer"):
    mtl_jax.Task("t", "classification", mtl_jax.Source("csv", {"train": "x.csv"}), batch_size=0)


def test_export_round_trips_and_the_encoder_is_a_bert_folder(trained, tmp_path, capsys):
  import safetensors.numpy

  from mtl_jax.encoders.pretrained import load_pretrained
  from mtl_jax.predict import Predictor

  _, workdir = trained
  out = tmp_path / "export"
  assert cli.main(["export", "--workdir", str(workdir), "--out", str(out)]) == 0
  assert sorted(p.name for p in (out / "heads").iterdir()) == [
      "ner.json", "ner.safetensors", "news.json", "news.safetensors"]
  head = json.loads((out / "heads" / "news.json").read_text())
  assert head["kind"] == "classification" and head["labels"] == ["0", "1", "2", "3"]
  # The encoder folder has BertModel's tensor names and reads back exactly.
  names = safetensors.numpy.load_file(out / "encoder" / "model.safetensors")
  assert "encoder.layer.0.attention.self.query.weight" in names
  assert "embeddings.word_embeddings.weight" in names
  from_workdir = Predictor.from_workdir(str(workdir))
  _, encoder = load_pretrained(out / "encoder")
  jax.tree.map(np.testing.assert_array_equal, encoder, jax.device_get(
      from_workdir.params["encoder"]))
  # Workdir-free: the same predictions and probabilities.
  exported = Predictor.from_export(str(out))
  texts = ["stocks fell sharply", "the team won the final", "a new phone chip"]
  assert exported.predict("news", texts, scores=True) == from_workdir.predict(
      "news", texts, scores=True)
  words = [["John", "lives", "in", "Paris"]]
  assert exported.predict("ner", words) == from_workdir.predict("ner", words)
  # Nothing is overwritten; one task alone.
  capsys.readouterr()
  assert cli.main(["export", "--workdir", str(workdir), "--out", str(out)]) == 2
  assert "exists and is not empty" in capsys.readouterr().err
  only = tmp_path / "only_ner"
  assert cli.main(["export", "--workdir", str(workdir), "--out", str(only),
                   "--task", "ner"]) == 0
  assert Predictor.from_export(str(only)).predict("ner", words) == from_workdir.predict(
      "ner", words)
  assert not (only / "heads" / "news.json").exists()


def test_exported_encoder_runs_in_transformers(trained, tmp_path):
  transformers = pytest.importorskip("transformers", reason="transformers is not installed")
  torch = pytest.importorskip("torch", reason="torch is not installed")
  from mtl_jax.predict import Predictor

  _, workdir = trained
  out = tmp_path / "export"
  assert cli.main(["export", "--workdir", str(workdir), "--out", str(out)]) == 0
  bert = transformers.AutoModel.from_pretrained(out / "encoder").eval()
  predictor = Predictor.from_workdir(str(workdir))
  ids = np.array([[2, 17, 40, 33, 3, 0]], np.int32)
  mask = (ids > 0).astype(np.int32)
  batch = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}
  ours = predictor.run.model.encode(predictor.params, {"news": batch}, train=False, rng=None)
  with torch.no_grad():
    theirs = bert(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)
                  ).last_hidden_state.numpy()
  np.testing.assert_allclose(np.asarray(ours["news"])[mask == 1], theirs[mask == 1],
                             atol=1e-4)


def test_predict_names_a_bad_input_byte_and_the_inputs_it_cut(trained, tmp_path, capsys,
                                                              caplog):
  _, workdir = trained
  inputs = tmp_path / "in.bin"
  inputs.write_bytes(b"fine text\n\xff\xfe not text\n")
  assert cli.main(["predict", "--workdir", str(workdir), "--task", "news",
                   "--input", str(inputs)]) == 2
  assert "in.bin: line 2: byte 0xff at column 1 is not utf-8 text" in capsys.readouterr().err
  # news has max_length 32 (the largest bucket): 40 words of one token each.
  inputs.write_text("short\n" + " ".join(["the"] * 40) + "\n")
  assert cli.main(["predict", "--workdir", str(workdir), "--task", "news",
                   "--input", str(inputs)]) == 0
  assert len(capsys.readouterr().out.splitlines()) == 2
  assert "1 input(s) longer than max_length 32 tokens were cut" in caplog.text
  assert "input 2: 10 of 40 words cut" in caplog.text


@pytest.mark.parametrize("kind, files", [
    ("adapters", ["encoder", "extra.safetensors", "heads", "run.json", "tokenizer",
                  "trainable.safetensors"]),
    # Per-task top layers: no whole BERT to write; the shared layers go to extra.
    ("layerwise", ["extra.safetensors", "heads", "run.json", "tokenizer"]),
])
def test_export_round_trips_every_layout(trained, tmp_path, kind, files):
  from mtl_jax.predict import Predictor

  config, _ = trained
  workdir, out = tmp_path / "work", tmp_path / "export"
  assert cli.main(["train", "--config", f"{config}:4", "--workdir", str(workdir),
                   "--no-progress", "--set", f"sharing.kind={kind}"]) == 0
  assert cli.main(["export", "--workdir", str(workdir), "--out", str(out)]) == 0
  assert sorted(p.name for p in out.iterdir()) == files
  texts = ["stocks fell sharply", "the team won the final"]
  assert Predictor.from_export(str(out)).predict("news", texts, scores=True) == \
      Predictor.from_workdir(str(workdir)).predict("news", texts, scores=True)

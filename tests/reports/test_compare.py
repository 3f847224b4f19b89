"""`mtl-jax compare` end to end on tiny shapes: two tasks, two seeds, a few steps."""

import json
import shutil

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mtl_jax import cli
from mtl_jax import config as config_lib
from mtl_jax.reports import compare
from mtl_jax.training.lock import workdir_lock

from helpers import COMPARE_CONFIG

CONFIG = COMPARE_CONFIG


@pytest.fixture(scope="module")
def compared(tmp_path_factory, data_dir):
  root = tmp_path_factory.mktemp("compare")
  config = root / "tiny.py"
  config.write_text(CONFIG.format(data=data_dir))
  workdir = root / "work"
  assert cli.main(["compare", "--config", str(config), "--workdir", str(workdir),
                   "--seeds", "0,1", "--no-progress", "--set", "train.steps=6"]) == 0
  return config, workdir


def test_single_task_config_keeps_the_budget_and_drops_balancing(data_dir, tmp_path):
  path = tmp_path / "tiny.py"
  path.write_text(CONFIG.format(data=data_dir))
  config = config_lib.load_config(str(path))
  single = compare.single_task_config(config, "ner")
  assert list(single.tasks) == ["ner"]
  assert single.tasks.ner.max_length == 32
  assert single.balancing.method == "equal" and not single.balancing.diagnostics
  assert single.train == config.train and single.encoder == config.encoder
  with pytest.raises(KeyError, match="no task 'pos'"):
    compare.single_task_config(config, "pos")


def test_report_has_every_task_and_delta_m(compared):
  _, workdir = compared
  report = json.loads((workdir / "report.json").read_text())
  assert set(report["tasks"]) == {"news", "ner"}
  assert report["seeds"] == [0, 1]
  assert len(report["runs"]) == 6 and all(r["seconds"] > 0 for r in report["runs"])

  def main_metric(setting, seed, task, metric):
    path = workdir / setting / f"seed_{seed}" / "metrics.json"
    return json.loads(path.read_text())[task][metric]

  gains = []
  # ner's main metric is its first selected one: token_accuracy.
  for task, metric in (("news", "accuracy"), ("ner", "token_accuracy")):
    row = report["tasks"][task]
    assert row["metric"] == metric and not row["lower_is_better"]
    single = [main_metric(f"single_task/{task}", s, task, metric) for s in (0, 1)]
    multi = [main_metric("multi_task", s, task, metric) for s in (0, 1)]
    assert row["single_task"]["mean"] == pytest.approx(np.mean(single))
    assert row["single_task"]["std"] == pytest.approx(np.std(single, ddof=1))
    assert row["multi_task"]["mean"] == pytest.approx(np.mean(multi))
    gains.append((np.mean(multi) - np.mean(single)) / np.mean(single))
  assert report["delta_m"] == pytest.approx(np.mean(gains))
  assert report["tasks"]["news"]["relative_gain"] == pytest.approx(gains[0])
  markdown = (workdir / "report.md").read_text()
  assert "| news | accuracy |" in markdown and "| ner | token_accuracy |" in markdown
  assert f"Δm = {100 * report['delta_m']:+.2f}%" in markdown
  for png in ("losses.png", "weights.png", "cosines.png"):
    assert (workdir / png).read_bytes()[:4] == b"\x89PNG"
    assert f"({png})" in markdown


def test_compare_again_reruns_only_unfinished_runs(compared, monkeypatch):
  config_path, workdir = compared
  unfinished = workdir / "single_task" / "ner" / "seed_1"
  (unfinished / "metrics.json").unlink()  # as if stopped after its last checkpoint
  log_before = (unfinished / "train_log.jsonl").read_text()
  trained = []
  real_train = compare.loop.train
  monkeypatch.setattr(compare.loop, "train",
                      lambda config, workdir, **kw: trained.append(workdir)
                      or real_train(config, workdir, **kw))
  config = config_lib.apply_overrides(config_lib.load_config(str(config_path)),
                                      ["train.steps=6"])
  summary = compare.run(config, str(workdir), seeds=(0, 1), progress=False)
  assert trained == [str(unfinished)]
  # It resumed from its final checkpoint: evaluated again, trained no step again.
  assert (unfinished / "train_log.jsonl").read_text() == log_before
  assert (unfinished / "metrics.json").exists()
  assert set(summary["tasks"]) == {"news", "ner"}


def test_runs_write_tensorboard_scalars(compared):
  _, workdir = compared
  events = EventAccumulator(str(workdir / "multi_task" / "seed_0" / "tensorboard"))
  events.Reload()
  tags = set(events.Tags()["scalars"])
  assert {"loss", "grad_norm", "learning_rate", "losses/news", "losses/ner", "weights/news",
          "weights/ner", "grad_norms/ner", "grad_cosines/ner__news", "eval/news/accuracy",
          "eval/ner/span_f1"} <= tags
  assert [e.step for e in events.Scalars("losses/news")] == [4, 6]
  log = [json.loads(line) for line in
         (workdir / "multi_task" / "seed_0" / "train_log.jsonl").read_text().splitlines()]
  steps = [record for record in log if "losses" in record]
  assert events.Scalars("losses/news")[-1].value == pytest.approx(steps[-1]["losses"]["news"])
  metrics = json.loads((workdir / "multi_task" / "seed_0" / "metrics.json").read_text())
  assert events.Scalars("eval/news/accuracy")[-1].value == pytest.approx(
      metrics["news"]["accuracy"])


def test_report_command_draws_one_run(compared, capsys):
  _, workdir = compared
  run = workdir / "multi_task" / "seed_1"
  assert cli.main(["report", "--workdir", str(run)]) == 0
  assert "report.md" in capsys.readouterr().out
  markdown = (run / "report" / "report.md").read_text()
  assert "accuracy" in markdown and "(cosines.png)" in markdown
  assert (run / "report" / "losses.png").exists()


def test_delta_m_leaves_out_a_task_whose_single_task_value_is_0(compared, tmp_path):
  """CoLA's MCC is 0 when a run predicts one class: Δm averages the other tasks, named."""
  config_path, workdir = compared
  copy = tmp_path / "work"
  shutil.copytree(workdir, copy)
  for seed in (0, 1):
    path = copy / "single_task" / "news" / f"seed_{seed}" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["news"]["accuracy"] = 0.0
    path.write_text(json.dumps(metrics))
  config = config_lib.apply_overrides(config_lib.load_config(str(config_path)),
                                      ["train.steps=6"])
  runs = compare.plan(config, str(copy), (0, 1))
  summary = compare.summarize(config, runs)
  assert summary["delta_m_excluded"] == ["news"]
  ner = summary["tasks"]["ner"]
  assert summary["delta_m"] == pytest.approx(
      (ner["multi_task"]["mean"] - ner["single_task"]["mean"]) / ner["single_task"]["mean"])
  assert summary["tasks"]["news"]["relative_gain"] is None
  markdown = compare.format_report(summary, {})
  assert "over 1 of 2 tasks; left out, single-task value 0: news" in markdown


def test_a_further_split_is_summarised_for_the_tasks_every_run_scored(compared, tmp_path):
  """A test split scored at the end of each run gets its own gains table; dev stays the main one."""
  config_path, workdir = compared
  copy = tmp_path / "work"
  shutil.copytree(workdir, copy)
  values = {("news", 0): 0.5, ("news", 1): 0.7, ("multi_task", 0): 0.6, ("multi_task", 1): 0.9}
  for (setting, seed), news in values.items():
    folder = copy / ("multi_task" if setting == "multi_task" else f"single_task/{setting}")
    # ner has test scores only in the multi-task runs: it is left out of the test table.
    scores = {"news": {"accuracy": news}}
    if setting == "multi_task":
      scores["ner"] = {"token_accuracy": 0.3}
    (folder / f"seed_{seed}" / "metrics_test.json").write_text(json.dumps(scores))
  for seed in (0, 1):
    (copy / "single_task" / "ner" / f"seed_{seed}" / "metrics_test.json").write_text("{}")
  config = config_lib.apply_overrides(config_lib.load_config(str(config_path)),
                                      ["train.steps=6"])
  summary = compare.summarize(config, compare.plan(config, str(copy), (0, 1)))
  assert list(summary["other_splits"]) == ["test"]
  news = summary["other_splits"]["test"]["news"]
  assert list(summary["other_splits"]["test"]) == ["news"]
  assert news["single_task"]["mean"] == pytest.approx(0.6)
  assert news["multi_task"]["mean"] == pytest.approx(0.75)
  assert news["multi_task"]["std"] == pytest.approx(np.std([0.6, 0.9], ddof=1))
  assert news["relative_gain"] == pytest.approx(0.25)
  # dev (the reported split) is unchanged by the test files.
  assert summary["tasks"] == compare.summarize(
      config, compare.plan(config, str(workdir), (0, 1)))["tasks"]
  markdown = compare.format_report(summary, {})
  assert "## The `test` split" in markdown
  assert "| news | accuracy | 0.6000 ± 0.1414 | 0.7500 ± 0.2121 | +25.00% |" in markdown
  # Without the files, no further split and no table.
  original = compare.summarize(config, compare.plan(config, str(workdir), (0, 1)))
  assert original["other_splits"] == {}
  assert "split" not in compare.format_report(original, {}).split("## Training time")[0]


def test_a_run_another_process_trains_is_left_to_it(compared, capsys):
  config_path, workdir = compared
  busy = workdir / "single_task" / "news" / "seed_0"
  (busy / "metrics.json").unlink()
  config = config_lib.apply_overrides(config_lib.load_config(str(config_path)),
                                      ["train.steps=6"])
  with workdir_lock(str(busy)):  # as if another `compare` process were training it
    with pytest.raises(compare.StillTraining, match="1 run.*" + str(busy)):
      compare.run(config, str(workdir), seeds=(0, 1), progress=False)
  assert "left to another process" in capsys.readouterr().out
  assert not (busy / "metrics.json").exists()
  # Once it is free, the next run finishes it and writes the report.
  summary = compare.run(config, str(workdir), seeds=(0, 1), progress=False)
  assert (busy / "metrics.json").exists() and set(summary["tasks"]) == {"news", "ner"}


def test_a_run_saved_before_a_new_option_existed_is_still_finished(tmp_path):
  # The runs' records are committed and read by later sessions: a default added
  # since (here: one sharing kind's options) must not make every run train again.
  config = config_lib.resolve(config_lib.default_config())
  config.train.steps = 7
  run = compare.SubRun(None, 0, str(tmp_path), config)
  saved = json.loads(json.dumps(config.to_dict()))
  del saved["sharing"]["mmoe"]  # as written before the option existed
  (tmp_path / "config.json").write_text(json.dumps(saved))
  (tmp_path / "metrics.json").write_text("{}")
  assert compare.is_finished(run)
  saved["train"]["steps"] = 8  # a setting that differs: not this run
  (tmp_path / "config.json").write_text(json.dumps(saved))
  assert not compare.is_finished(run)
  saved["train"]["steps"] = 7
  # How the step computes is not which run it is (token compaction, kernels).
  saved["train"]["token_buckets"], saved["encoder"]["attention_impl"] = 8, "xla"
  (tmp_path / "config.json").write_text(json.dumps(saved))
  assert compare.is_finished(run)
  saved["train"]["no_such_key"] = 1  # a key that no longer exists
  (tmp_path / "config.json").write_text(json.dumps(saved))
  assert not compare.is_finished(run)


def test_baselines_are_read_from_another_comparison_not_trained(compared, tmp_path,
                                                                  monkeypatch):
  config_path, workdir = compared
  trained = []
  real_train = compare.loop.train
  monkeypatch.setattr(compare.loop, "train",
                      lambda config, workdir, **kw: trained.append(workdir)
                      or real_train(config, workdir, **kw))
  other = tmp_path / "equal"
  assert cli.main(["compare", "--config", str(config_path), "--workdir", str(other),
                   "--seeds", "0,1", "--no-progress", "--set", "train.steps=6",
                   "--set", "balancing.method=equal", "--set", "optimizer.learning_rate=1e-3",
                   "--baselines", str(workdir)]) == 0
  assert trained == [str(other / "multi_task" / f"seed_{seed}") for seed in (0, 1)]
  assert not (other / "single_task").exists()
  report = json.loads((other / "report.json").read_text())
  first = json.loads((workdir / "report.json").read_text())
  assert report["baselines"] == str(workdir) and report["reused"] == []
  assert ({(r["task"], r["seed"], r["workdir"]) for r in report["runs"] if r["task"]}
          == {(r["task"], r["seed"], r["workdir"]) for r in first["runs"] if r["task"]})
  for task in ("news", "ner"):
    assert report["tasks"][task]["single_task"] == first["tasks"][task]["single_task"]
    metric = report["tasks"][task]["metric"]
    assert report["tasks"][task]["multi_task"]["values"] == [
        json.loads((other / "multi_task" / f"seed_{seed}" / "metrics.json").read_text())[task][
            metric] for seed in (0, 1)]
  # Each setting's rate is its own run's: the baselines' 3e-3, the new multi-task 1e-3.
  assert report["setup"]["learning_rates"] == {
      "multi_task": 1e-3, "single_task/news": 3e-3, "single_task/ner": 3e-3}
  assert f"read from the comparison in `{workdir}`" in (other / "report.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0,1,2", "--set", "train.steps=6"], "no single-task run of 'ner' at seed 2"),
    (["--seeds", "0,1", "--set", "train.steps=4"], "in train.steps: train.steps 6 there, 4 here"),
    (["--seeds", "0,1", "--set", "train.steps=6", "--set", "tasks.news.max_length=16"],
     "differs from this comparison's single-task run of 'news' in tasks"),
])
def test_baselines_that_saw_other_examples_are_refused(compared, tmp_path, capsys, args,
                                                       message):
  config_path, workdir = compared
  assert cli.main(["compare", "--config", str(config_path), "--workdir", str(tmp_path / "w"),
                   "--no-progress", "--baselines", str(workdir), *args]) == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / "w" / "multi_task").exists()  # refused before training anything


def test_baselines_need_a_finished_comparison(compared, tmp_path, capsys):
  config_path, _ = compared
  assert cli.main(["compare", "--config", str(config_path), "--workdir", str(tmp_path / "w"),
                   "--no-progress", "--baselines", str(tmp_path)]) == 2
  assert f"{tmp_path}: no report.json there" in capsys.readouterr().err

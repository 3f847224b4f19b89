"""`mtl-jax compare --learning-rates`: rates chosen on held-out data, then compared."""

import json
import math
import os
import shutil

import pytest

from mtl_jax import cli
from mtl_jax import config as config_lib
from mtl_jax.reports import compare, selection
from mtl_jax.training.lock import workdir_lock

from helpers import COMPARE_CONFIG as CONFIG

GRID = (1e-6, 3e-3)


@pytest.fixture(scope="module")
def selected(tmp_path_factory, data_dir):
  root = tmp_path_factory.mktemp("selection")
  config = root / "tiny.py"
  config.write_text(CONFIG.format(data=data_dir))
  workdir = root / "work"
  assert cli.main(["compare", "--config", str(config), "--workdir", str(workdir),
                   "--seeds", "0", "--no-progress", "--set", "train.steps=6",
                   "--set", "balancing.diagnostics=False", "--set", "train.eval_every=2",
                   "--set", "train.patience=1", "--set", "checkpoint.best_metric=main_score",
                   "--learning-rates", ",".join(map(str, GRID)), "--holdout", "0.25"]) == 0
  return config, workdir


def test_each_setting_takes_the_rate_with_the_best_held_out_score(selected):
  _, workdir = selected
  chosen = json.loads((workdir / "selection.json").read_text())
  assert set(chosen["settings"]) == {"multi_task", "single_task/news", "single_task/ner"}
  for name, entry in chosen["settings"].items():
    scores = {}
    for lr in GRID:
      candidate = workdir / "selection" / name / f"lr_{lr!r}"
      saved = json.loads((candidate / "config.json").read_text())
      # Scored on a quarter of train held out, never on the dev split.
      assert saved["train"]["eval_split"] == "heldout"
      assert saved["optimizer"]["learning_rate"] == lr
      assert all(t["source"]["holdout"] == 0.25 for t in saved["tasks"].values())
      metrics = json.loads((candidate / "metrics.json").read_text())
      # news: accuracy; ner: token_accuracy (its first metric); the mean of both multi-task.
      values = [metrics[t]["accuracy" if t == "news" else "token_accuracy"] for t in metrics]
      scores[lr] = sum(values) / len(values)
      assert entry["scores"][repr(lr)] == pytest.approx(scores[lr])
    assert entry["chosen"] == max(GRID, key=lambda lr: (scores[lr], -GRID.index(lr)))
    # The comparison's seed-0 run of the setting is its chosen candidate (the same
    # config: the chosen rate, early-stopped on the same held-out slice), read from
    # the selection and not trained again; the report scores the eval split.
    chosen_dir = workdir / "selection" / name / f"lr_{entry['chosen']!r}"
    assert not (workdir / name / "seed_0").exists()
    report = json.loads((workdir / "report.json").read_text())
    assert str(chosen_dir) in report["reused"]
    assert str(chosen_dir) in [run["workdir"] for run in report["runs"]]
  report = json.loads((workdir / "report.json").read_text())
  chosen_multi = f"lr_{chosen['settings']['multi_task']['chosen']!r}"
  reported = json.loads(
      (workdir / "selection" / "multi_task" / chosen_multi / "metrics_eval.json").read_text())
  assert report["tasks"]["news"]["multi_task"]["mean"] == reported["news"]["accuracy"]
  assert report["selection"] == chosen
  assert "## Learning rates, chosen on held-out data" in (workdir / "report.md").read_text()


def test_running_again_trains_nothing(selected, monkeypatch):
  config_path, workdir = selected
  monkeypatch.setattr(compare.loop, "train", lambda *a, **k: pytest.fail("trained again"))
  config = config_lib.apply_overrides(config_lib.load_config(str(config_path)), [
      "train.steps=6", "balancing.diagnostics=False", "train.eval_every=2",
      "train.patience=1", "checkpoint.best_metric=main_score"])
  summary = selection.run(config, str(workdir), GRID, seeds=(0,), fraction=0.25,
                          progress=False)
  assert set(summary["tasks"]) == {"news", "ner"}


def test_while_a_candidate_trains_elsewhere_the_chosen_settings_go_on(selected, tmp_path):
  config_path, workdir = selected
  copy = tmp_path / "work"
  shutil.copytree(workdir, copy)
  busy = copy / "selection" / "single_task" / "ner" / f"lr_{GRID[0]!r}"
  (busy / "metrics.json").unlink()
  config = config_lib.apply_overrides(config_lib.load_config(str(config_path)), [
      "train.steps=6", "balancing.diagnostics=False", "train.eval_every=2",
      "train.patience=1", "checkpoint.best_metric=main_score"])
  with workdir_lock(str(busy)):  # as if another `compare` process were training it
    with pytest.raises(compare.StillTraining, match=str(busy)):
      selection.run(config, str(copy), GRID, seeds=(0, 1), fraction=0.25, progress=False)
  # The settings whose rate is chosen trained their seed-1 runs at that rate meanwhile;
  # ner, whose choice waits for the busy candidate, did not.
  chosen = json.loads((workdir / "selection.json").read_text())["settings"]
  for name in ("multi_task", "single_task/news"):
    saved = json.loads((copy / name / "seed_1" / "config.json").read_text())
    assert (copy / name / "seed_1" / "metrics.json").exists()
    assert saved["optimizer"]["learning_rate"] == chosen[name]["chosen"]
  assert not (copy / "single_task" / "ner" / "seed_1").exists()


def test_choose_takes_the_best_finite_score_and_the_first_on_a_tie():
  assert selection.choose({1e-4: 0.5, 2e-4: 0.7, 5e-4: math.nan}) == 2e-4
  assert selection.choose({1e-4: 0.7, 2e-4: 0.7}) == 1e-4
  with pytest.raises(ValueError, match="no learning rate"):
    selection.choose({1e-4: math.nan})


def test_a_bad_grid_or_fraction_is_refused(selected):
  config_path, workdir = selected
  config = config_lib.load_config(str(config_path))
  with pytest.raises(ValueError, match="repeat"):
    selection.plan(config, str(workdir), (1e-4, 1e-4), 0.1, 0)
  with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
    selection.plan(config, str(workdir), (1e-4,), 1.0, 0)
  with pytest.raises(ValueError, match="settings the comparison lacks"):
    compare.plan(config, str(workdir), [0], {"single_task/pos": 1e-4})
  with pytest.raises(SystemExit):  # argparse: a usage error, exit 2
    cli.main(["compare", "--config", str(config_path), "--workdir", str(workdir),
              "--learning-rates", "1e-4,-1"])


def test_without_early_stopping_the_comparison_trains_on_all_of_train(selected):
  config_path, _ = selected
  config = config_lib.load_config(str(config_path))
  plain = selection.comparison_config(config, 0.25)
  assert plain.train.eval_split == "eval"
  assert all(not dict(t).get("source", {}).get("holdout") for t in plain.tasks.values())
  stopping = config_lib.apply_overrides(config_lib.resolve(config), [
      "train.patience=2", "train.eval_every=2", "checkpoint.best_metric=main_score"])
  held = selection.comparison_config(stopping, 0.25)
  assert held.train.eval_split == "heldout"
  assert all(t.source.holdout == 0.25 for t in held.tasks.values())


def test_compare_refuses_to_stop_early_on_the_reported_split(selected):
  config_path, workdir = selected
  config = config_lib.apply_overrides(config_lib.load_config(str(config_path)), [
      "train.patience=2", "train.eval_every=2", "checkpoint.best_metric=main_score"])
  with pytest.raises(ValueError, match="hold out a slice to stop on"):
    compare.plan(config, str(workdir), [0])


def test_only_a_finished_run_with_the_same_config_is_reused(selected, tmp_path):
  config_path, _ = selected
  planned = compare.plan(config_lib.load_config(str(config_path)), str(tmp_path / "cmp"),
                         [0, 1])
  twin = compare.SubRun(None, 0, str(tmp_path / "twin"), planned[0].config)
  unfinished = compare.SubRun("news", 0, str(tmp_path / "unfinished"), planned[1].config)
  for run in (twin, unfinished):
    (tmp_path / os.path.basename(run.workdir)).mkdir()
    (tmp_path / os.path.basename(run.workdir) / "config.json").write_text(
        json.dumps(config_lib.resolve(run.config).to_dict()))
  (tmp_path / "twin" / "metrics.json").write_text("{}")
  reused = compare.reuse_finished(planned, [twin, unfinished])
  # Only seed 0's multi-task run has a finished twin; seed 1's differs by its seed,
  # and the single-task twin never finished.
  assert [run.workdir for run in reused] == [twin.workdir] + [r.workdir for r in planned[1:]]


def test_with_baselines_only_the_multi_task_rate_is_chosen(selected, tmp_path):
  config_path, workdir = selected
  other = tmp_path / "equal"
  assert cli.main(["compare", "--config", str(config_path), "--workdir", str(other),
                   "--seeds", "0", "--no-progress", "--set", "train.steps=6",
                   "--set", "balancing.method=equal", "--set", "balancing.diagnostics=False",
                   "--set", "train.eval_every=2", "--set", "train.patience=1",
                   "--set", "checkpoint.best_metric=main_score", "--learning-rates",
                   ",".join(map(str, GRID)), "--holdout", "0.25",
                   "--baselines", str(workdir)]) == 0
  chosen = json.loads((other / "selection.json").read_text())
  assert set(chosen["settings"]) == {"multi_task"}
  assert sorted(os.listdir(other / "selection")) == ["multi_task"]
  # The single-task runs are the baselines' (their rates chosen there), read as they are.
  first = json.loads((workdir / "report.json").read_text())
  report = json.loads((other / "report.json").read_text())
  assert ({(r["task"], r["workdir"]) for r in report["runs"] if r["task"]}
          == {(r["task"], r["workdir"]) for r in first["runs"] if r["task"]})
  for task in ("news", "ner"):
    assert report["tasks"][task]["single_task"] == first["tasks"][task]["single_task"]


def test_with_reuse_a_new_comparison_reads_the_finished_runs_it_shares(selected, tmp_path,
                                                                       monkeypatch):
  # A comparison that widens a finished one's grid trains only what is new; here
  # nothing is new (the same grid, seeds and recipe), so nothing may train.
  config_path, workdir = selected
  monkeypatch.setattr(compare.loop, "train", lambda *a, **k: pytest.fail("trained"))
  other = tmp_path / "again"
  assert cli.main(["compare", "--config", str(config_path), "--workdir", str(other),
                   "--seeds", "0", "--no-progress", "--set", "train.steps=6",
                   "--set", "balancing.diagnostics=False", "--set", "train.eval_every=2",
                   "--set", "train.patience=1", "--set", "checkpoint.best_metric=main_score",
                   "--learning-rates", ",".join(map(str, GRID)), "--holdout", "0.25",
                   "--reuse", str(workdir)]) == 0
  first = json.loads((workdir / "selection.json").read_text())
  chosen = json.loads((other / "selection.json").read_text())
  for name, entry in first["settings"].items():
    assert chosen["settings"][name]["scores"] == entry["scores"]
    assert chosen["settings"][name]["workdirs"] == entry["workdirs"]  # the first one's
  report = json.loads((other / "report.json").read_text())
  before = json.loads((workdir / "report.json").read_text())
  assert [r["workdir"] for r in report["runs"]] == [r["workdir"] for r in before["runs"]]
  assert report["tasks"] == before["tasks"]
  assert not (other / "selection").exists() and not (other / "multi_task").exists()

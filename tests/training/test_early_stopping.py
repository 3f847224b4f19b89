"""Early stopping: `train.patience` evaluations without a better best metric end the run."""

import json
import math

import pytest

from mtl_jax import cli
from mtl_jax import config as config_lib
from mtl_jax.training import loop
from mtl_jax.training.early_stopping import EarlyStopping

from helpers import RUN_CONFIG as CONFIG


def test_patience_counts_evaluations_since_the_best():
  early = EarlyStopping(patience=2)
  stops = [early.update(step, value)
           for step, value in ((2, 0.5), (4, 0.7), (6, 0.6), (8, 0.7))]
  assert stops == [False, False, False, True]  # 0.7 again is no improvement
  assert early.best == 0.7 and early.stopped_at == 8
  restored = EarlyStopping(2, "max", **early.to_meta())
  assert restored == early


def test_min_mode_nan_and_patience_zero():
  early = EarlyStopping(patience=1, mode="min")
  assert not early.update(1, 0.3) and not early.update(2, 0.1)
  assert early.update(3, math.nan)  # NaN is never a new best
  never = EarlyStopping(patience=0)
  assert not any(never.update(step, 0.0) for step in range(10))


# The evaluations at steps 4, 8, 12, 16 report these main scores, whatever the
# model does: the best is at step 8, so patience 2 stops the run at step 16.
SCRIPTED = [0.2, 0.9, 0.5, 0.4]


def _scripted_run(root, data_dir, steps, patience):
  """Trains the tiny config with the first evaluations' scores set to SCRIPTED.

  Returns:
    The config, the workdir and the real results of every evaluation, in order.
  """
  path = root / "tiny.py"
  path.write_text(CONFIG.format(data=data_dir))
  config = config_lib.apply_overrides(config_lib.load_config(str(path)), [
      f"train.steps={steps}", "train.eval_every=4", f"train.patience={patience}",
      "checkpoint.best_metric=main_score", "checkpoint.keep=1"])
  workdir = root / "work"
  real_evaluate, real_results = loop.evaluate, []

  def scripted(*args, **kwargs):
    results = real_evaluate(*args, **kwargs)
    real_results.append(json.loads(json.dumps(results)))
    if len(real_results) <= len(SCRIPTED):  # news's accuracy decides the main score
      value = SCRIPTED[len(real_results) - 1]
      results = {"news": {**results["news"], "accuracy": value},
                 "ner": {**results["ner"], "span_f1": value}}
    return results

  loop.evaluate = scripted
  try:
    loop.train(config, str(workdir), progress=False)
  finally:
    loop.evaluate = real_evaluate
  return config, workdir, real_results


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, data_dir):
  return _scripted_run(tmp_path_factory.mktemp("early"), data_dir, steps=40, patience=2)


def test_the_run_stops_after_patience_and_is_scored_at_its_best(stopped):
  _, workdir, real_results = stopped
  log = [json.loads(line) for line in (workdir / "train_log.jsonl").read_text().splitlines()]
  assert max(record["step"] for record in log) == 16
  # Scored at the best checkpoint (step 8): the real results of that evaluation.
  assert len(real_results) == 5
  assert json.loads((workdir / "metrics.json").read_text()) == real_results[1]


def test_a_run_with_patience_left_at_its_last_step_is_scored_at_its_best(tmp_path, data_dir):
  # Evaluations at steps 4, 8, 12 and the last, 16, score 0.2, 0.9, 0.5, 0.4: two
  # without a better score, so patience 3 never stops the run; it is still scored
  # at step 8, its best (a fifth evaluation, of the restored checkpoint).
  _, workdir, real_results = _scripted_run(tmp_path, data_dir, steps=16, patience=3)
  log = [json.loads(line) for line in (workdir / "train_log.jsonl").read_text().splitlines()]
  assert max(record["step"] for record in log) == 16
  # Every evaluation is logged, the last step's too (the scores each one reported).
  evals = {record["step"]: record["eval"]["news"]["accuracy"] for record in log
           if "eval" in record}
  assert evals == dict(zip([4, 8, 12, 16], SCRIPTED))
  assert len(real_results) == 5 and real_results[4] == real_results[1]
  assert json.loads((workdir / "metrics.json").read_text()) == real_results[1]


def test_a_stopped_run_stays_stopped_when_trained_again(stopped):
  config, workdir, _ = stopped
  log_before = (workdir / "train_log.jsonl").read_text()
  metrics_before = (workdir / "metrics.json").read_text()
  loop.train(config, str(workdir), progress=False)
  assert (workdir / "train_log.jsonl").read_text() == log_before
  assert json.loads((workdir / "metrics.json").read_text()) == json.loads(metrics_before)


def test_patience_needs_a_best_metric_and_evaluations(tmp_path, data_dir):
  path = tmp_path / "tiny.py"
  path.write_text(CONFIG.format(data=data_dir))
  assert cli.main(["train", "--config", str(path), "--workdir", str(tmp_path / "w"),
                   "--set", "train.patience=2", "--no-progress"]) != 0
  assert not (tmp_path / "w").exists()

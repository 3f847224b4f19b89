"""experiments/: gradient_shares, task_peaks, heldout_curves, cola_domains: known answers."""

import json

import numpy as np
import pytest

from helpers import load_experiment_script


def _step(step, norms, cosine):
  return {"step": step, "loss": 1.0, "grad_norms": dict(zip("ab", norms)),
          "grad_cosines": [[1.0, cosine], [cosine, 1.0]]}


def test_gradient_shares_by_window():
  shares = load_experiment_script("gradient_shares").shares
  records = [_step(10, (3.0, 4.0), 0.2), _step(20, (1.0, 0.0), -0.4), _step(30, (2.0, 2.0), 0.0)]
  first, second = shares(records, window=20)
  assert (first["first"], first["last"], first["steps"]) == (1, 20, 2)
  assert (second["first"], second["last"], second["steps"]) == (21, 40, 1)
  # Shares of the squared norms, per step then averaged: (9/25 + 1) / 2 and (16/25 + 0) / 2.
  assert first["shares"] == pytest.approx({"a": 0.68, "b": 0.32})
  assert first["norms"] == pytest.approx({"a": 2.0, "b": 2.0})  # medians
  assert first["cosines"] == pytest.approx({"a": -0.1, "b": -0.1})
  assert second["shares"] == pytest.approx({"a": 0.5, "b": 0.5})


def _write_run(workdir, evaluations, kept):
  evaluations = evaluations or {2: {task: {} for task in kept}}  # a single-task run's log
  workdir.mkdir(parents=True)
  with open(workdir / "train_log.jsonl", "w") as f:
    for step, results in evaluations.items():
      losses = {task: 0.1 * step for task in results}
      f.write(json.dumps({"step": step, "loss": 1.0, "losses": losses}) + "\n")
      f.write(json.dumps({"step": step, "eval": results}) + "\n")
  (workdir / "metrics.json").write_text(json.dumps(kept))
  return str(workdir)


def test_task_peaks_finds_the_kept_step_and_each_task_best(tmp_path):
  peaks = load_experiment_script("task_peaks").peaks
  at = {4: {"a": {"f1": 0.5}, "b": {"r": 0.9}}, 8: {"a": {"f1": 0.7}, "b": {"r": 0.6}}}
  # Seed 0 kept step 8 (logged); seed 1 kept its last step, which it did not log.
  runs = [{"task": None, "seed": 0, "workdir": _write_run(tmp_path / "m0", at, at[8])},
          {"task": None, "seed": 1,
           "workdir": _write_run(tmp_path / "m1", at, {"a": {"f1": 0.8}, "b": {"r": 0.1}})}]
  for seed in (0, 1):
    runs += [{"task": "a", "seed": seed,
              "workdir": _write_run(tmp_path / f"a{seed}", {}, {"a": {"f1": 0.75}})},
             {"task": "b", "seed": seed,
              "workdir": _write_run(tmp_path / f"b{seed}", {}, {"b": {"r": 0.95}})}]
  report = {"tasks": {"a": {"metric": "f1"}, "b": {"metric": "r"}}, "runs": runs}
  rows = {(r["task"], r["seed"]): r for r in peaks(report)}
  assert rows["a", 0] == pytest.approx({
      "task": "a", "seed": 0, "metric": "f1", "kept": 0.7, "kept_step": 8, "best": 0.7,
      "best_step": 8, "single": 0.75, "multi_loss": 0.6, "single_loss": 0.2})
  assert (rows["b", 0]["kept"], rows["b", 0]["best"], rows["b", 0]["best_step"]) == (0.6, 0.9, 4)
  assert (rows["a", 1]["kept_step"], rows["a", 1]["best"], rows["a", 1]["best_step"]) == (
      None, 0.8, None)
  assert (rows["b", 1]["best"], rows["b", 1]["best_step"]) == (0.9, 4)
  assert np.isclose(rows["b", 1]["single"], 0.95)


def test_heldout_curves_sets_two_runs_evaluations_side_by_side(tmp_path):
  script = load_experiment_script("heldout_curves")
  first = _write_run(tmp_path / "a", {2: {"x": {"f1": 0.5, "acc": 0.9}, "y": {"mcc": 0.1}},
                                      4: {"x": {"f1": 0.7, "acc": 0.9}, "y": {"mcc": 0.3}}}, {})
  second = _write_run(tmp_path / "b", {2: {"x": {"f1": 0.6}, "y": {"mcc": 0.0}}}, {})
  table = script.markdown(script.evaluations(first), script.evaluations(second)).splitlines()
  assert table[0] == "| step | x | y | mean |"
  # The first metric of each task (f1, not acc); the mean over the tasks.
  assert table[2] == "| 2 | 0.500 / 0.600 | 0.100 / 0.000 | 0.3000 / 0.3000 |"
  assert table[3] == "| 4 | 0.700 / - | 0.300 / - | 0.5000 / - |"


def test_cola_domains_scores_the_halves_by_whether_train_has_their_source():
  by_domain = load_experiment_script("cola_domains").by_domain
  train = [["a", "1", "", "x"], ["b", "0", "*", "y"]]
  dev = [["a", "1", "", "s"], ["a", "0", "*", "t"], ["b", "1", "", "u"], ["b", "0", "*", "v"],
         ["z", "1", "", "w"], ["z", "0", "*", "q"]]
  # In-domain (sources a, b) all right; out-of-domain (z) all wrong.
  scores = by_domain(train, dev, [1, 0, 1, 0, 0, 1])
  assert scores["in-domain"] == (4, pytest.approx(1.0))
  assert scores["out-of-domain"] == (2, pytest.approx(-1.0))
  assert scores["all"][0] == 6 and scores["all"][1] == pytest.approx(1 / 3)

"""experiments/quality.py: the comparisons' headline figures, from report.json."""

import json

import pytest

from helpers import load_experiment_script


def _load():
  return load_experiment_script("quality")


def _report(single, multi):
  # The fields of mtl_jax.reports.compare.summarize that the headline reads.
  return {"seeds": [0, 1, 2], "tasks": {"ner": {
      "metric": "span_f1", "lower_is_better": False,
      "single_task": {"mean": single, "std": 0.01, "values": []},
      "multi_task": {"mean": multi, "std": 0.02, "values": []}, "relative_gain": None}}}


def test_each_setup_is_written_and_earlier_setups_are_kept(tmp_path):
  quality = _load()
  out = tmp_path / "quality.json"
  (tmp_path / "a.json").write_text(json.dumps(_report(0.9, 0.88)))
  (tmp_path / "b.json").write_text(json.dumps(_report(0.7, 0.75)))
  quality.main([f"first={tmp_path / 'a.json'}@abc1234", "--out", str(out)])
  quality.main([f"second={tmp_path / 'b.json'}@def5678", "--out", str(out)])
  written = json.loads(out.read_text())
  assert written["first"]["ner"] == {"metric": "span_f1", "single_mean": 0.9,
                                     "single_std": 0.01, "multi_mean": 0.88,
                                     "multi_std": 0.02, "seeds": [0, 1, 2],
                                     "commit": "abc1234"}
  assert written["second"]["ner"]["multi_mean"] == 0.75


def test_a_further_split_sits_beside_the_dev_figures(tmp_path):
  report = _report(0.9, 0.88)
  report["other_splits"] = {"test": {"ner": {
      "metric": "span_f1", "lower_is_better": False,
      "single_task": {"mean": 0.85, "std": 0.004, "values": []},
      "multi_task": {"mean": 0.84, "std": 0.005, "values": []}, "relative_gain": None}}}
  (tmp_path / "a.json").write_text(json.dumps(report))
  written = _load().main([f"s={tmp_path / 'a.json'}@abc1234", "--out", str(tmp_path / "q.json")])
  assert written["s"]["ner"]["single_mean"] == 0.9
  assert written["s"]["ner"]["test"] == {"single_mean": 0.85, "single_std": 0.004,
                                         "multi_mean": 0.84, "multi_std": 0.005}


def test_a_setup_without_its_commit_is_refused(tmp_path):
  with pytest.raises(SystemExit):  # argparse's usage error
    _load().main([f"first={tmp_path / 'a.json'}", "--out", str(tmp_path / "q.json")])

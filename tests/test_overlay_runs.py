"""experiments/overlay_runs.py draws its figures from real train-log records."""

import json

import pytest

from helpers import capture_figures, drawn_lines, load_experiment_script


def _load():
  return load_experiment_script("overlay_runs")


def _write_log(workdir, diagnostics):
  workdir.mkdir()
  with open(workdir / "train_log.jsonl", "w") as f:
    for step in (50, 100):
      record = {"step": step, "losses": {"a": 1.0 / step, "b": 2.0 / step},
                "weights": {"a": 1.0, "b": 1.0}}
      if diagnostics:
        record.update(grad_norms={"a": 0.5, "b": 0.7},
                      grad_cosines=[[1.0, -0.1 * step / 50], [-0.1 * step / 50, 1.0]])
      f.write(json.dumps(record) + "\n")
    f.write(json.dumps({"step": 100, "eval": {"a/accuracy": 0.5}}) + "\n")


def test_overlay_draws_every_figure(tmp_path, monkeypatch):
  _write_log(tmp_path / "plain", diagnostics=False)
  _write_log(tmp_path / "diag", diagnostics=True)
  out = tmp_path / "out"
  module = _load()
  figures = capture_figures(monkeypatch)
  module.main(["--out", str(out), f"equal={tmp_path / 'plain'}", f"pcgrad={tmp_path / 'diag'}"])
  assert sorted(p.name for p in out.iterdir()) == [
      "cosines.png", "grad_norms.png", "losses.png", "weights.png"]
  losses, weights, norms, cosines = (drawn_lines(f) for f in figures)
  # One panel per task, one line per run, the runs' logged values.
  for run in ("equal", "pcgrad"):
    assert losses["a", run] == ([50, 100], [1 / 50, 1 / 100])
    assert losses["b", run] == ([50, 100], [2 / 50, 2 / 100])
    assert weights["b", run] == ([50, 100], [1.0, 1.0])
  # Only the run with diagnostics has gradient norms and cosines.
  assert norms == {("a", "pcgrad"): ([50, 100], [0.5, 0.5]),
                   ("b", "pcgrad"): ([50, 100], [0.7, 0.7])}
  assert cosines == {("a vs b", "pcgrad"): ([50, 100], [-0.1, -0.2])}
  records = [json.loads(line) for line in open(tmp_path / "diag" / "train_log.jsonl")][:2]
  assert module.pair_cosine(records, 0, 1) == ([50, 100], [-0.1, -0.2])


def test_overlay_names_a_bad_argument(tmp_path, capsys):
  with pytest.raises(SystemExit):
    _load().main(["--out", str(tmp_path), "no-equals-sign"])
  assert "LABEL=WORKDIR" in capsys.readouterr().err

"""experiments/overlay_runs.py draws its figures from real train-log records."""

import importlib.util
import json
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "overlay_runs.py"


def _load():
  spec = importlib.util.spec_from_file_location("overlay_runs", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


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


def test_overlay_draws_every_figure(tmp_path):
  _write_log(tmp_path / "plain", diagnostics=False)
  _write_log(tmp_path / "diag", diagnostics=True)
  out = tmp_path / "out"
  module = _load()
  module.main(["--out", str(out), f"equal={tmp_path / 'plain'}", f"pcgrad={tmp_path / 'diag'}"])
  assert sorted(p.name for p in out.iterdir()) == [
      "cosines.png", "grad_norms.png", "losses.png", "weights.png"]
  records = [json.loads(line) for line in open(tmp_path / "diag" / "train_log.jsonl")][:2]
  assert module.pair_cosine(records, 0, 1) == ([50, 100], [-0.1, -0.2])


def test_overlay_names_a_bad_argument(tmp_path, capsys):
  with pytest.raises(SystemExit):
    _load().main(["--out", str(tmp_path), "no-equals-sign"])
  assert "LABEL=WORKDIR" in capsys.readouterr().err

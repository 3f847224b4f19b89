import json

import pytest

from mtl_jax.metrics import plots


def _write_log(path, diagnostics):
  with open(path, "w") as f:
    for step in (10, 20, 30):
      record = {"step": step, "loss": 2.0, "losses": {"a": 1.0 / step, "b": 2.0 / step},
                "weights": {"a": 1.0, "b": 0.5}, "grad_norm": 1.0}
      if diagnostics:
        record["grad_norms"] = {"a": 0.3, "b": 0.7}
        record["grad_cosines"] = [[1.0, -0.2 + step / 100], [-0.2 + step / 100, 1.0]]
      f.write(json.dumps(record) + "\n")
    f.write(json.dumps({"step": 30, "eval": {"a": {"accuracy": 0.5}}}) + "\n")


@pytest.mark.parametrize("diagnostics", [True, False])
def test_plot_balancing_writes_a_png(tmp_path, diagnostics):
  log = tmp_path / "train_log.jsonl"
  _write_log(log, diagnostics)
  assert len(plots.read_train_log(log)) == 3  # the eval line is not a step
  png = plots.plot_balancing(log, tmp_path / "balancing.png")
  assert (tmp_path / "balancing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert png.endswith("balancing.png")


def test_bad_logs_are_named(tmp_path):
  log = tmp_path / "train_log.jsonl"
  log.write_text('{"step": 1, "losses": {"a": 1}, "weights": {"a": 1}}\nnot json\n')
  with pytest.raises(ValueError, match="line 2: not JSON"):
    plots.read_train_log(log)
  log.write_text("")
  with pytest.raises(ValueError, match="no training steps logged"):
    plots.plot_balancing(log, tmp_path / "x.png")

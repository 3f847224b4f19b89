import json

import numpy as np
import pytest

from mtl_jax.metrics import plots

from helpers import capture_figures, drawn_lines


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
def test_plot_balancing_draws_the_logged_curves(tmp_path, diagnostics, monkeypatch):
  log = tmp_path / "train_log.jsonl"
  _write_log(log, diagnostics)
  assert len(plots.read_train_log(log)) == 3  # the eval line is not a step
  figures = capture_figures(monkeypatch)
  png = plots.plot_balancing(log, tmp_path / "balancing.png")
  assert (tmp_path / "balancing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert png.endswith("balancing.png")
  steps = [10, 20, 30]
  expected = {("loss", "a"): (steps, [1 / 10, 1 / 20, 1 / 30]),
              ("loss", "b"): (steps, [2 / 10, 2 / 20, 2 / 30]),
              ("weight", "a"): (steps, [1.0] * 3), ("weight", "b"): (steps, [0.5] * 3)}
  if diagnostics:
    expected.update({("gradient norm", "a"): (steps, [0.3] * 3),
                     ("gradient norm", "b"): (steps, [0.7] * 3),
                     ("gradient cosine", "a / b"): (steps, [-0.1, 0.0, 0.1])})
  (figure,) = figures
  drawn = drawn_lines(figure)
  assert drawn.keys() == expected.keys()
  for key, (x, y) in expected.items():
    assert drawn[key][0] == x
    np.testing.assert_allclose(drawn[key][1], y, atol=1e-12)


def test_bad_logs_are_named(tmp_path):
  log = tmp_path / "train_log.jsonl"
  log.write_text('{"step": 1, "losses": {"a": 1}, "weights": {"a": 1}}\nnot json\n')
  with pytest.raises(ValueError, match="line 2: not JSON"):
    plots.read_train_log(log)
  log.write_text("")
  with pytest.raises(ValueError, match="no training steps logged"):
    plots.plot_balancing(log, tmp_path / "x.png")

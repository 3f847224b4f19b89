"""`mtl-jax pareto` end to end on tiny shapes, and the front's geometry."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import cli
from mtl_jax import config as config_lib
from mtl_jax.reports import compare, pareto
from mtl_jax.weighting import from_spec

from helpers import COMPARE_CONFIG as CONFIG


def test_beyond_front_is_above_the_piecewise_linear_curve():
  front = [(0.2, 0.9), (0.6, 0.7), (0.9, 0.2)]
  assert pareto.beyond_front(front, (0.4, 0.81))  # the curve is at 0.8 there
  assert not pareto.beyond_front(front, (0.4, 0.79))
  assert not pareto.beyond_front(front, (0.6, 0.7))  # on the front is not beyond it
  assert pareto.beyond_front(front, (0.1, 0.95)) and not pareto.beyond_front(front, (0.1, 0.85))
  assert pareto.beyond_front(front, (0.95, 0.2)) and not pareto.beyond_front(front, (0.95, 0.1))
  # Both branches give Python bools: pareto.json is written with the json module.
  for point in ((0.4, 0.81), (0.95, 0.2), (0.95, 0.1)):
    assert json.dumps(pareto.beyond_front(front, point)) in ("true", "false")


@pytest.fixture(scope="module")
def front(tmp_path_factory, data_dir):
  root = tmp_path_factory.mktemp("pareto")
  config = root / "tiny.py"
  config.write_text(CONFIG.format(data=data_dir))
  workdir = root / "work"
  assert cli.main(["pareto", "--config", str(config), "--workdir", str(workdir),
                   "--tasks", "news,ner", "--weights", "0.25,0.5,0.75",
                   "--methods", "pcgrad;cagrad(c=0.4)", "--seeds", "0,1", "--no-progress",
                   "--set", "train.steps=6", "--set", "balancing.diagnostics=False"]) == 0
  return workdir


def test_every_point_is_scored_and_placed(front):
  summary = json.loads((front / "pareto.json").read_text())
  assert list(summary["points"]) == ["static_w0.25", "static_w0.5", "static_w0.75", "pcgrad",
                                     "cagrad_c_0.4"]
  assert summary["metrics"] == {"news": "accuracy", "ner": "token_accuracy"}
  static = summary["points"]["static_w0.25"]
  assert static["method"] == "static(weights=[0.5, 1.5])"
  values = [json.loads((front / "static_w0.25" / f"seed_{s}" / "metrics.json").read_text())
            ["news"]["accuracy"] for s in (0, 1)]
  assert static["metrics"]["news"]["values"] == values
  # The front is the static means alone; a method is beyond it where it lies above
  # their linear interpolation (both metrics higher-is-better here).
  xs, ys = np.array(sorted((p["metrics"]["news"]["mean"], p["metrics"]["ner"]["mean"])
                           for p in summary["points"].values() if p["static"])).T
  for name in ("pcgrad", "cagrad_c_0.4"):
    point = summary["points"][name]
    x, y = point["metrics"]["news"]["mean"], point["metrics"]["ner"]["mean"]
    expected = y >= ys[-1] if x > xs[-1] else y > np.interp(x, xs, ys)
    assert point["beyond_front"] == expected
  report = (front / "pareto.md").read_text()
  assert "| pcgrad | `pcgrad` |" in report and "Beyond the front:" in report
  assert (front / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_the_static_mid_point_is_equal_weighting(front):
  # w = 0.5 weighs both losses 1.0: it runs as equal weighting, which does.
  saved = json.loads((front / "static_w0.5" / "seed_0" / "config.json").read_text())
  assert saved["balancing"]["method"] == "equal"
  losses = jnp.array([0.3, 2.0])
  for w in (0.25, 0.5):
    weights, _ = from_spec(pareto.static_method(w), num_tasks=2).update(losses, ())
    np.testing.assert_array_equal(weights, [2 * w, 2 * (1 - w)])


def test_a_comparisons_equal_weight_runs_are_read_not_trained(data_dir, tmp_path, monkeypatch):
  config = tmp_path / "tiny.py"
  config.write_text(CONFIG.format(data=data_dir))
  common = ["--config", str(config), "--seeds", "0", "--no-progress", "--set", "train.steps=6",
            "--set", "balancing.diagnostics=False"]
  assert cli.main(["compare", "--workdir", str(tmp_path / "cmp"), *common,
                   "--set", "balancing.method=equal"]) == 0
  trained = []
  real_train = compare.loop.train
  monkeypatch.setattr(compare.loop, "train",
                      lambda config, workdir, **kw: trained.append(workdir)
                      or real_train(config, workdir, **kw))
  assert cli.main(["pareto", "--workdir", str(tmp_path / "front"), "--tasks", "news,ner",
                   "--weights", "0.5,0.75", "--reuse", str(tmp_path / "cmp"), *common]) == 0
  assert trained == [str(tmp_path / "front" / "static_w0.75" / "seed_0")]
  summary = json.loads((tmp_path / "front" / "pareto.json").read_text())
  metrics = json.loads((tmp_path / "cmp" / "multi_task" / "seed_0" / "metrics.json").read_text())
  assert summary["points"]["static_w0.5"]["metrics"]["ner"]["values"] == [
      metrics["ner"]["token_accuracy"]]


def test_runs_train_seed_by_seed(data_dir, tmp_path):
  path = tmp_path / "tiny.py"
  path.write_text(CONFIG.format(data=data_dir))
  runs = pareto.plan(config_lib.load_config(str(path)), str(tmp_path), ("news", "ner"),
                     weights=(0.25, 0.75), methods=("pcgrad",), seeds=(3, 1))
  order = [(run.name, run.seed) for run in pareto.training_order(runs)]
  assert order == [("static_w0.25", 3), ("static_w0.75", 3), ("pcgrad", 3),
                   ("static_w0.25", 1), ("static_w0.75", 1), ("pcgrad", 1)]


def test_bad_pairs_and_weights_are_refused(front, data_dir, tmp_path):
  path = tmp_path / "tiny.py"
  path.write_text(CONFIG.format(data=data_dir))
  config = config_lib.load_config(str(path))
  with pytest.raises(ValueError, match="two distinct tasks"):
    pareto.plan(config, str(tmp_path), ("news", "news"))
  with pytest.raises(KeyError, match="no task 'pos'"):
    pareto.plan(config, str(tmp_path), ("news", "pos"))
  with pytest.raises(ValueError, match=r"in \(0, 1\)"):
    pareto.plan(config, str(tmp_path), ("news", "ner"), weights=(0.5, 1.0))

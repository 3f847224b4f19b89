"""A whole tiny run with a gradient-aggregation method and diagnostics on."""

import json

import numpy as np
import pytest

import mtl_jax
from mtl_jax import config as config_lib

from helpers import capture_figures, drawn_lines


def test_run_logs_and_plots_balancing_diagnostics(tmp_path, data_dir, monkeypatch):
  config = config_lib.default_config()
  config.tasks = {
      "news": {"kind": "classification", "source": {"format": "csv", "splits": {
          "train": str(data_dir / "news_train.csv")}}},
      "ner": {"kind": "tagging", "source": {"format": "conll", "splits": {
          "train": str(data_dir / "ner_train.txt")}}, "max_length": 16},
  }
  config.encoder.update(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
  config.tokenizer.vocab_size = 100
  config_lib.apply_overrides(config, ["balancing.method=pcgrad", "balancing.diagnostics=True",
                                      "balancing.gradient_mode=representation",
                                      "train.steps=4", "train.log_every=2",
                                      "train.batch_size=4", "train.buckets=(16,)",
                                      "mesh.shape.data=1"])
  figures = capture_figures(monkeypatch)
  mtl_jax.train(config, str(tmp_path), progress=False)
  records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
  assert [r["step"] for r in records] == [2, 4]
  for record in records:
    assert set(record["grad_norms"]) == {"ner", "news"}
    assert all(v > 0 for v in record["grad_norms"].values())
    assert np.array(record["grad_cosines"]).shape == (2, 2)
  # The run's balancing figure draws exactly what it logged.
  (figure,) = [f for f in figures if len(f.axes) == 4]
  lines = drawn_lines(figure)
  for name in ("ner", "news"):
    assert lines["gradient norm", name] == ([2, 4], [r["grad_norms"][name] for r in records])
    assert lines["loss", name] == ([2, 4], [r["losses"][name] for r in records])
  # Tasks in the run's order (ner, news): the one pair's cosine.
  assert lines["gradient cosine", "ner / news"] == (
      [2, 4], [r["grad_cosines"][0][1] for r in records])
  assert (tmp_path / "balancing.png").stat().st_size > 0


def test_balancing_config_keys_are_checked():
  config = config_lib.default_config()
  assert config.balancing.gradient_mode == "auto" and not config.balancing.diagnostics
  config_lib.apply_overrides(config, ["balancing.gradient_mode=full"])
  assert config.balancing.gradient_mode == "full"
  with pytest.raises(ValueError, match="did you mean 'gradient_mode'"):
    config_lib.apply_overrides(config, ["balancing.gradient_mod=full"])

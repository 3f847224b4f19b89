"""A whole tiny run with a gradient-aggregation method and diagnostics on."""

import json

import numpy as np

import mtl_jax
from mtl_jax import config as config_lib


def test_run_logs_and_plots_balancing_diagnostics(tmp_path, data_dir):
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
  mtl_jax.train(config, str(tmp_path), progress=False)
  records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [2, 4]
  for record in records:
    assert set(record["grad_norms"]) == {"ner", "news"}
    cosines = np.array(record["grad_cosines"])
    assert cosines.shape == (2, 2)
    np.testing.assert_allclose(np.diagonal(cosines), 1.0, rtol=1e-5)
    np.testing.assert_allclose(cosines, cosines.T, atol=1e-6)
  assert (tmp_path / "balancing.png").stat().st_size > 0


def test_balancing_config_keys_are_checked():
  config = config_lib.default_config()
  assert config.balancing.gradient_mode == "auto" and not config.balancing.diagnostics
  config_lib.apply_overrides(config, ["balancing.gradient_mode=full"])
  assert config.balancing.gradient_mode == "full"
  try:
    config_lib.apply_overrides(config, ["balancing.gradient_mod=full"])
  except ValueError as error:
    assert "did you mean 'gradient_mode'" in str(error)
  else:
    raise AssertionError("a mistyped balancing key was accepted")

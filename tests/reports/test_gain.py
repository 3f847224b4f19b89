"""Relative gain and Δm on hand-computed numbers."""

import math

import pytest

from mtl_jax.reports import gain


def test_lower_is_better_knows_errors_and_parts():
  assert gain.lower_is_better("mse")
  assert gain.lower_is_better("mse_matched")
  assert not gain.lower_is_better("accuracy")
  assert not gain.lower_is_better("span_f1")
  assert not gain.lower_is_better("matthews_corr")


def test_relative_gain_signs():
  assert gain.relative_gain(0.88, 0.80, lower=False) == pytest.approx(0.10)
  assert gain.relative_gain(0.72, 0.80, lower=False) == pytest.approx(-0.10)
  # An error that drops from 2.0 to 1.5 is a 25% gain.
  assert gain.relative_gain(1.5, 2.0, lower=True) == pytest.approx(0.25)
  assert gain.relative_gain(2.5, 2.0, lower=True) == pytest.approx(-0.25)
  # A negative baseline correlation: moving up is still a gain.
  assert gain.relative_gain(-0.1, -0.2, lower=False) == pytest.approx(0.5)
  with pytest.raises(ValueError, match="single-task value is 0"):
    gain.relative_gain(0.1, 0.0, lower=False)


def test_delta_m_by_hand():
  # accuracy 0.80 -> 0.84 (+5%), span_f1 0.50 -> 0.45 (-10%), mse 2.0 -> 1.6 (+20%).
  single = {"news": 0.80, "ner": 0.50, "sts": 2.0}
  multi = {"news": 0.84, "ner": 0.45, "sts": 1.6}
  metrics = {"news": "accuracy", "ner": "span_f1", "sts": "mse"}
  assert gain.delta_m(multi, single, metrics) == pytest.approx((0.05 - 0.10 + 0.20) / 3)
  # Ignoring the direction would give (0.05 - 0.10 - 0.20) / 3 instead.
  assert not math.isclose(gain.delta_m(multi, single, metrics), (0.05 - 0.10 - 0.20) / 3)
  with pytest.raises(KeyError, match="'sts' has no single-task value"):
    gain.delta_m(multi, {"news": 0.8, "ner": 0.5}, metrics)

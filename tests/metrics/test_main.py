"""The main metric of a task's results and a run's main score."""

import math

import pytest

from mtl_jax.metrics import main


class _Spec:
  def __init__(self, metric):
    self.main_metric = metric

  def main_metric_in(self, results):
    del results
    return self.main_metric


class _Task:
  def __init__(self, name, metric):
    self.name, self.spec = name, _Spec(metric)


def test_main_score_negates_lower_is_better_metrics():
  results = {"a": {"accuracy": 0.8}, "b": {"mse": 0.2}}
  assert main.main_score(results, [_Task("a", "accuracy"), _Task("b", "mse")]) == \
      pytest.approx(0.3)


def test_main_score_takes_a_split_parts_first_value_and_keeps_nan():
  results = {"mnli": {"accuracy_matched": 0.7, "accuracy_mismatched": 0.6},
             "sts": {"pearson": math.nan}}
  assert main.main_score(results, [_Task("mnli", "accuracy")]) == pytest.approx(0.7)
  assert math.isnan(main.main_score(results, [_Task("sts", "pearson")]))


def test_a_missing_main_metric_names_the_task():
  with pytest.raises(KeyError, match="task a: no 'f1'"):
    main.main_score({"a": {"accuracy": 1.0}}, [_Task("a", "f1")])


def test_lower_is_better_reads_the_metric_family():
  assert main.lower_is_better("mse") and main.lower_is_better("mse_matched")
  assert not main.lower_is_better("accuracy") and not main.lower_is_better("pearson")

"""Mixtures: named task sets with sampling rates, from the registry, a config and the CLI."""

import pytest

from mtl_jax import config as config_lib
from mtl_jax.tasks import Mixture, MixtureRegistry, rate_num_examples
from mtl_jax.tasks import mixture as mixture_lib
from mtl_jax.training import run as run_lib


def test_rates_resolve_to_shares():
  rates = {"a": 2.0, "b": 1.0, "c": "examples", "d": rate_num_examples(maximum=100)}
  shares = mixture_lib.resolve_rates(rates, {"a": 10, "b": 10, "c": 7, "d": 1000})
  total = 2 + 1 + 7 + 100
  assert shares == pytest.approx({"a": 2 / total, "b": 1 / total, "c": 7 / total,
                                  "d": 100 / total})


def test_temperature_flattens_proportional_rates():
  rate = rate_num_examples(temperature=2.0)
  shares = mixture_lib.resolve_rates({"big": rate, "small": rate}, {"big": 400, "small": 4})
  assert shares["big"] / shares["small"] == pytest.approx(10.0)  # sqrt(400 / 4)


def test_bad_mixtures_are_named():
  with pytest.raises(ValueError, match="rates for tasks it does not have: \\['b'\\]"):
    Mixture("m", {"a": {}}, rates={"b": 1.0})
  with pytest.raises(ValueError, match="task a's rate must be a positive number"):
    Mixture("m", {"a": {}}, rates={"a": -1})
  with pytest.raises(KeyError, match="did you mean 'glue_small'"):
    MixtureRegistry.get("glue_smal")
  with pytest.raises(ValueError, match="cannot parse config.mixture 'glue_small\\('"):
    mixture_lib.mixture_from_spec("glue_small(")
  with pytest.raises(ValueError, match="unexpected keyword argument 'data'"):
    mixture_lib.mixture_from_spec("glue_small(data='x')")


def test_config_names_a_mixture(data_dir):
  """`--set mixture=...` expands into the run's tasks; config.tasks adds options."""
  config = config_lib.default_config()
  config_lib.apply_overrides(config, [
      f"mixture=glue_small(data_dir='{data_dir / 'glue'}')",
      "tasks.glue_rte.max_length=64"])
  tasks = {t.name: t for t in run_lib.build_tasks(config)}
  assert list(tasks) == ["glue_cola", "glue_mrpc", "glue_rte", "glue_sst2", "glue_stsb"]
  assert tasks["glue_rte"].max_length == 64
  assert tasks["glue_mrpc"].source.splits["train"] == str(data_dir / "glue" / "MRPC" /
                                                          "train.tsv")
  rates = mixture_lib.task_rates(config.mixture, list(tasks), {
      "glue_cola": 6, "glue_mrpc": 4, "glue_rte": 4, "glue_sst2": 6, "glue_stsb": 4})
  assert rates == pytest.approx({"glue_cola": 0.25, "glue_mrpc": 1 / 6, "glue_rte": 1 / 6,
                                 "glue_sst2": 0.25, "glue_stsb": 1 / 6})
  assert mixture_lib.task_rates("", list(tasks), {}) is None


def test_a_config_with_no_tasks_and_no_mixture():
  with pytest.raises(ValueError, match="config.tasks and config.mixture are empty"):
    run_lib.build_tasks(config_lib.default_config())

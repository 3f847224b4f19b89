"""Every experiment config loads, with its documented arguments, into a valid config.

The configs only build paths to ../shared, so this needs no data; a typo in a
key or an argument fails here instead of after a run has read its data.
"""

import pathlib

import pytest

from mtl_jax import config as config_lib
from mtl_jax import weighting

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "configs"

SPECS = [
    "agnews_conll.py", "agnews_conll.py:tasks=ag_news,steps=30,seed=1",
    "glue_mtl.py", "glue_mtl.py:tasks=rte+mrpc,steps=300",
    "sharing.py:kind=adapters,placement=pfeiffer", "sharing.py:kind=cross_stitch",
    "balancing.py:method=pcgrad,mode=representation,steps=300",
    "balancing.py:method=cagrad(c=0.4)", "demo.py", "schedules.py",
]


@pytest.mark.parametrize("spec", SPECS)
def test_experiment_config_loads(spec):
  config = config_lib.load_config(str(CONFIGS / spec))
  assert config.tasks, spec
  weighting.from_spec(config.balancing.method, num_tasks=len(config.tasks))


def test_every_config_file_is_covered():
  covered = {spec.partition(":")[0] for spec in SPECS}
  assert covered == {p.name for p in CONFIGS.glob("*.py")} - {"common.py"}


def test_balancing_config_names_an_unknown_method():
  with pytest.raises(ValueError, match="pcgard"):
    config_lib.load_config(str(CONFIGS / "balancing.py:method=pcgard"))
  config = config_lib.load_config(str(CONFIGS / "balancing.py:method=gradnorm,steps=300"))
  assert config.balancing.method == "gradnorm" and config.balancing.diagnostics
  assert config.train.steps == 300


def test_every_balancing_method_runs_on_the_seed_setup_by_name():
  from mtl_jax.training.step import resolve_gradient_mode

  for name in weighting.names():
    spec = str(CONFIGS / f"balancing.py:method={name}")
    if name == "krum":  # at least three tasks, whatever its arguments
      with pytest.raises(ValueError, match="at least n_byzantine \\+ 3 tasks; got .* 2 tasks"):
        config_lib.load_config(spec)
      continue
    config = config_lib.load_config(spec)
    method = weighting.from_spec(config.balancing.method, num_tasks=len(config.tasks))
    assert resolve_gradient_mode(method, config.balancing.gradient_mode, diagnostics=True)

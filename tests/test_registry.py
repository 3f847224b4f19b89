"""The one registry class and the one spec parser every named thing uses."""

import pytest

from mtl_jax import sharing, weighting
from mtl_jax.registry import Registry, UnknownNameError
from mtl_jax.specs import parse_spec
from mtl_jax.tasks import KINDS, MixtureRegistry, Source, TaskRegistry
from mtl_jax.tasks.sources import READERS


def test_parse_spec():
  assert parse_spec("equal") == ("equal", {})
  assert parse_spec("static(weights=[1, 0.5])") == ("static", {"weights": [1, 0.5]})
  with pytest.raises(ValueError, match="cannot parse schedule"):
    parse_spec("static(weights=[1,", what="schedule")
  with pytest.raises(ValueError, match="must look like"):
    parse_spec("static(1, 2)")
  with pytest.raises(ValueError, match="arguments must be literals"):
    parse_spec("static(weights=w)")
  with pytest.raises(ValueError, match="must be a string"):
    parse_spec(3)


def test_registry_rejects_duplicates_and_suggests_the_closest_names():
  things = Registry("thing")
  things.register("alpha", 1)

  @things.register("beta")
  def beta(x=2):
    return x

  assert things["alpha"] == 1 and things.get("beta", x=5) == 5
  assert things.names() == ["alpha", "beta"] and "beta" in things and len(things) == 2
  with pytest.raises(ValueError, match="thing 'alpha' is already registered"):
    things.register("alpha", 3)
  with pytest.raises(UnknownNameError, match="unknown thing 'alpah' \\(did you mean 'alpha'\\?\\); "
                     "known: alpha, beta"):
    things["alpah"]
  # Callers may catch either habit.
  assert issubclass(UnknownNameError, KeyError) and issubclass(UnknownNameError, ValueError)


@pytest.mark.parametrize("registry, typo, close", [
    (weighting.base.METHODS, "pcgrd", "pcgrad"),
    (sharing.ARCHITECTURES, "adapter", "adapters"),
    (KINDS, "taging", "tagging"),
    (READERS, "jsonlines", "jsonl"),
    (TaskRegistry, "ag_newz", "ag_news"),
    (MixtureRegistry, "glue_smal", "glue_small"),
])
def test_every_named_thing_is_one_registry(registry, typo, close):
  assert isinstance(registry, Registry)
  with pytest.raises(UnknownNameError, match=f"did you mean '{close}'"):
    registry[typo]


def test_the_config_paths_answer_with_the_closest_names():
  with pytest.raises(ValueError, match="did you mean 'pcgrad'"):
    weighting.from_spec("pcgrd")
  with pytest.raises(ValueError, match="did you mean 'adapters'"):
    sharing.build_model({"kind": "adapter"}, None, [])
  with pytest.raises(ValueError, match="unknown source format 'jsonlines' \\(did you mean 'jsonl'"):
    Source("jsonlines", {"train": "x"})

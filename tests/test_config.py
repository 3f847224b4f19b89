import pytest

from mtl_jax import config as config_lib


def test_resolve_merges_onto_defaults():
  config = config_lib.resolve({"train": {"steps": 7}, "tasks": {"a": {"kind": "x"}}})
  assert config.train.steps == 7 and config.train.batch_size == 32
  assert config.tasks.a.kind == "x"


@pytest.mark.parametrize("given, message", [
    ({"trian": {}}, r"unknown config key 'trian' \(did you mean 'train'\?\)"),
    ({"train": {"stpes": 3}}, r"unknown config key 'train.stpes' \(did you mean 'train.steps'\?\)"),
    ({"train": {"steps": "many"}}, "config key 'train.steps' takes a int"),
])
def test_bad_keys_and_types_are_named(given, message):
  with pytest.raises(ValueError, match=message):
    config_lib.resolve(given)


def test_overrides():
  config = config_lib.default_config()
  config_lib.apply_overrides(config, ["train.steps=12",
                                      "balancing.method=static(weights=[1,2])",
                                      "optimizer.learning_rate=1", "train.buckets=(8, 16)"])
  assert config.train.steps == 12
  assert config.balancing.method == "static(weights=[1,2])"
  assert config.optimizer.learning_rate == 1.0
  assert config.train.buckets == (8, 16)
  with pytest.raises(ValueError, match=r"unknown config key 'train.setps' \(did you mean 'steps'"):
    config_lib.apply_overrides(config, ["train.setps=3"])
  with pytest.raises(ValueError, match="key=value"):
    config_lib.apply_overrides(config, ["train.steps"])


def test_the_old_weighting_key_still_works_with_a_deprecation_warning():
  with pytest.warns(DeprecationWarning, match="write config.balancing.method = 'pcgrad'"):
    config = config_lib.apply_overrides(config_lib.default_config(), ["weighting=pcgrad"])
  assert config.balancing.method == "pcgrad" and config.weighting == ""
  old_file_config = config_lib.default_config()
  old_file_config.weighting = "cagrad(c=0.4)"  # what a config file of before wrote
  with pytest.warns(DeprecationWarning):
    assert config_lib.resolve(old_file_config).balancing.method == "cagrad(c=0.4)"
  both = config_lib.default_config()
  both.weighting, both.balancing.method = "pcgrad", "mgda"
  with pytest.raises(ValueError, match="disagree: set only config.balancing.method"):
    config_lib.resolve(both)


def test_load_config_file_with_argument(tmp_path):
  path = tmp_path / "c.py"
  path.write_text("from mtl_jax.config import default_config\n"
                  "def get_config(arg=None):\n"
                  "  c = default_config()\n"
                  "  c.train.steps = int(arg or 5)\n"
                  "  return c\n")
  assert config_lib.load_config(str(path)).train.steps == 5
  assert config_lib.load_config(f"{path}:9").train.steps == 9
  with pytest.raises(FileNotFoundError):
    config_lib.load_config(str(tmp_path / "none.py"))

"""The README's config table is the code's: every key, its default, a line of what it does."""

import pathlib

from mtl_jax import config as config_lib
from mtl_jax import config_docs

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_table_is_generated_from_default_config():
  assert config_docs.readme_section(README.read_text()) == config_docs.key_table(), (
      "the README's config table is stale: run python -m mtl_jax.config_docs --write")


def test_every_key_has_a_default_and_a_description():
  rows = config_docs.key_table().splitlines()[2:]
  keys = [row.split("`")[1] for row in rows]
  assert "train.eval_every" in keys and "balancing.method" in keys and "seed" in keys
  assert len(keys) == len(set(keys))
  defaults = config_lib.default_config()
  assert len(keys) == sum(1 for _ in config_docs._flat(defaults))  # pylint: disable=protected-access
  assert all(row.rstrip(" |").split("|")[-1].strip() for row in rows), "a key has no line"

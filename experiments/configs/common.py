"""Shared pieces of the experiment configs: where the real data and weights are."""

import os

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# ../shared beside the checkout, or $MTL_JAX_SHARED.
SHARED = os.environ.get("MTL_JAX_SHARED", os.path.join(os.path.dirname(_REPO), "shared"))
DATA = os.path.join(SHARED, "data")
MINILM = os.path.join(SHARED, "models", "all-MiniLM-L6-v2")


def parse_arg(arg, **defaults):
  """'key=value,key=value' (from `--config file.py:arg`) over defaults."""
  values = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in values:
      raise ValueError(f"unknown config argument {key!r}; known: {sorted(values)}")
    values[key] = type(defaults[key])(value) if defaults[key] is not None else value
  return values

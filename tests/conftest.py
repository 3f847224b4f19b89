"""Test settings: 8 emulated CPU devices and strict JAX, set before jax is imported."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib

import jax
import pytest

# Implicit rank promotion hides shape bugs (a [b] vector meeting a [b, 1] one).
jax.config.update("jax_numpy_rank_promotion", "raise")

DATA = pathlib.Path(__file__).parent / "data"
# ../shared beside the checkout, or $MTL_JAX_SHARED (as experiments/configs/common.py).
SHARED = pathlib.Path(os.environ.get(
    "MTL_JAX_SHARED", pathlib.Path(__file__).resolve().parents[1].parent / "shared"))


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
  """Small fixtures of our own (tests/data)."""
  return DATA


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
  """The real data and weights beside the checkout; skips where absent."""
  if not (SHARED / "data").is_dir():
    pytest.skip(f"needs the real data in {SHARED} (present in CI, absent on user machines)")
  return SHARED


def pytest_collection_modifyitems(items):
  for item in items:
    if "shared_dir" in getattr(item, "fixturenames", ()):
      item.add_marker(pytest.mark.shared)

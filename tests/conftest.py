"""Test settings: 8 emulated CPU devices and strict JAX, set before jax is imported."""

import os
import tempfile

# Unoptimised CPU code compiles 2-3x faster; tests run tiny shapes, where
# compiling, not running, is the cost.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8"
                           " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One compilation cache per test session, shared with the CLI subprocesses some
# tests start: a program compiled once (the same tiny model trained, resumed,
# evaluated) is not compiled again. Compiles dominate the suite's time.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _JIT_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="mtl_jax_jit_")
# Under pytest-xdist (`-n`), the workers inherit the controller's directory; each
# takes its own folder in it, because jax writes an entry in place and another
# worker could read it half-written. (`--dist loadfile` keeps a file's tests, which
# compile the same programs, on one worker.)
if os.environ.get("PYTEST_XDIST_WORKER"):
  os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(
      os.environ["JAX_COMPILATION_CACHE_DIR"], os.environ["PYTEST_XDIST_WORKER"])
  os.makedirs(os.environ["JAX_COMPILATION_CACHE_DIR"], exist_ok=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pathlib
import shutil

import jax
import pytest

import helpers

# Implicit rank promotion hides shape bugs (a [b] vector meeting a [b, 1] one).
jax.config.update("jax_numpy_rank_promotion", "raise")
# Implicit dtype promotion hides precision bugs (a float64 constant, a bf16 value
# silently widened): every mixed-dtype operation must say which dtype it means.
jax.config.update("jax_numpy_dtype_promotion", "strict")

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


@pytest.fixture(scope="session")
def two_task_batch():
  """`helpers.two_task_batch`: `make(seed=0, b=4, length=8, vocab=30)`, 'news' and 'ner'."""
  return helpers.two_task_batch


def pytest_collection_modifyitems(items):
  for item in items:
    if "shared_dir" in getattr(item, "fixturenames", ()):
      item.add_marker(pytest.mark.shared)


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  if "_JIT_CACHE" in globals():
    shutil.rmtree(_JIT_CACHE, ignore_errors=True)

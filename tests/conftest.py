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
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pathlib
import shutil

import jax
import numpy as np
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


@pytest.fixture(scope="session")
def two_task_batch():
  """A random joint batch for tiny models: 'news' (3 classes) and 'ner' (4 tags).

  Returns `make(seed=0, b=4, length=8, vocab=30)`; rows have 3 to `length`
  real tokens, the rest padding.
  """

  def make(seed=0, b=4, length=8, vocab=30):
    rng = np.random.default_rng(seed)
    mask = (np.arange(length)[None] < rng.integers(3, length + 1, (b, 1))).astype(np.int32)

    def task(labels):
      return {"input_ids": (rng.integers(1, vocab, (b, length)) * mask).astype(np.int32),
              "token_type_ids": np.zeros((b, length), np.int32),
              "attention_mask": mask, "labels": labels}

    tags = np.where(mask == 1, rng.integers(0, 4, (b, length)), -100).astype(np.int32)
    return {"news": task(rng.integers(0, 3, b).astype(np.int32)), "ner": task(tags)}

  return make


def pytest_collection_modifyitems(items):
  for item in items:
    if "shared_dir" in getattr(item, "fixturenames", ()):
      item.add_marker(pytest.mark.shared)


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  if "_JIT_CACHE" in globals():
    shutil.rmtree(_JIT_CACHE, ignore_errors=True)

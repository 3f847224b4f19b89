"""Building the native kernels: cached per machine, a clear fallback where no compiler works."""

import pytest

from mtl_jax.kernels import build


def test_a_failing_compiler_warns_and_reports_unavailable(tmp_path, monkeypatch):
  monkeypatch.setenv("MTL_JAX_KERNEL_CACHE", str(tmp_path))
  monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
  with pytest.warns(RuntimeWarning, match="native CPU kernels unavailable.*false"):
    assert build.native_kernels_available.__wrapped__() is False
  assert list(tmp_path.iterdir()) == []  # no half-written library left behind


def test_the_switch_turns_the_kernels_off(monkeypatch):
  monkeypatch.setenv("MTL_JAX_NATIVE_KERNELS", "0")
  assert build.native_kernels_available.__wrapped__() is False


def test_the_library_is_cached_by_source_and_machine(tmp_path, monkeypatch):
  monkeypatch.setenv("MTL_JAX_KERNEL_CACHE", str(tmp_path))
  path = build._library_path("c++")
  assert path.parent == tmp_path and path.suffix == ".so"
  assert build._library_path("c++") == path
  assert build._library_path("clang++") != path

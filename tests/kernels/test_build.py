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


def test_the_library_is_cached_by_source_compiler_and_machine(tmp_path, monkeypatch):
  monkeypatch.setenv("MTL_JAX_KERNEL_CACHE", str(tmp_path))
  path = build._library_path("c++")
  assert path.parent == tmp_path and path.suffix == ".so"
  assert build._library_path("clang++") != path
  # Another CPU (its feature flags) builds its own library...
  monkeypatch.setattr(build, "_cpu_flags", lambda: "flags : fpu sse2")
  other_cpu = build._library_path("c++")
  assert other_cpu != path
  # ...and so does a changed source.
  source = tmp_path / "attention_cpu.cc"
  source.write_text(build._SOURCE.read_text() + "\n// changed\n")
  monkeypatch.setattr(build, "_SOURCE", source)
  assert build._library_path("c++") not in (path, other_cpu)


def test_a_changed_source_is_rebuilt_not_loaded_from_the_old_cache(tmp_path, monkeypatch):
  """A cached library of another source is never loaded: the new source compiles."""
  monkeypatch.setenv("MTL_JAX_KERNEL_CACHE", str(tmp_path))
  compiled = []
  monkeypatch.setattr(build, "_compile", lambda compiler, target: compiled.append(target))
  monkeypatch.setattr(build.ctypes.cdll, "LoadLibrary", lambda path: (_ for _ in ()).throw(
      OSError(f"stop after the build step: {path}")))
  old = build._library_path("c++")
  old.write_bytes(b"an old build")
  source = tmp_path / "attention_cpu.cc"
  source.write_text(build._SOURCE.read_text() + "\n// changed\n")
  monkeypatch.setattr(build, "_SOURCE", source)
  with pytest.warns(RuntimeWarning, match="stop after the build step"):
    build.native_kernels_available.__wrapped__()
  assert compiled == [build._library_path("c++")] and compiled[0] != old

"""Building the native kernels: cached per machine, a clear fallback where no compiler works."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtl_jax.kernels import build


def test_a_failing_compiler_warns_and_reports_unavailable(tmp_path, monkeypatch):
  monkeypatch.setenv("MTL_JAX_KERNEL_CACHE", str(tmp_path))
  monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
  with pytest.warns(RuntimeWarning, match="native CPU kernels unavailable.*false"):
    assert build._load() is None
  assert list(tmp_path.iterdir()) == []  # no half-written library left behind


def test_the_switch_turns_the_kernels_off(monkeypatch):
  monkeypatch.setenv("MTL_JAX_NATIVE_KERNELS", "0")
  assert build._load() is None


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
  source = tmp_path / "gemm_cpu.cc"
  source.write_text(build._SOURCES[1].read_text() + "\n// changed\n")
  monkeypatch.setattr(build, "_SOURCES", [build._SOURCES[0], source])
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
  source = tmp_path / "gemm_cpu.cc"
  source.write_text(build._SOURCES[1].read_text() + "\n// changed\n")
  monkeypatch.setattr(build, "_SOURCES", [build._SOURCES[0], source])
  with pytest.warns(RuntimeWarning, match="stop after the build step"):
    build._load()
  assert compiled == [build._library_path("c++")] and compiled[0] != old


def _fake_compiler(tmp_path, body="print('warning: from the fake compiler', file=sys.stderr)"):
  """A "compiler" that writes its -o file (not a loadable library) and runs `body`."""
  script = tmp_path / "fake_cxx.py"
  script.write_text("import sys\n" + body + "\n"
                    "out = sys.argv[sys.argv.index('-o') + 1]\n"
                    "open(out, 'wb').write(b'not a library')\n")
  return f"{sys.executable} {script}"


def test_a_build_says_when_it_starts_and_ends_with_the_compilers_warnings(
    tmp_path, monkeypatch, capfd):
  monkeypatch.setenv("MTL_JAX_KERNEL_CACHE", str(tmp_path / "cache"))
  compiler = _fake_compiler(tmp_path)
  target = build._library_path(compiler)
  build._compile(compiler, target)
  err = capfd.readouterr().err
  assert "building the native CPU kernels" in err and str(target) in err
  assert "built the native CPU kernels in" in err and "warning: from the fake compiler" in err
  assert target.read_bytes() == b"not a library"


def test_a_build_that_hangs_is_stopped(tmp_path, monkeypatch):
  monkeypatch.setenv("MTL_JAX_KERNEL_CACHE", str(tmp_path / "cache"))
  monkeypatch.setenv("MTL_JAX_KERNEL_BUILD_TIMEOUT", "0.5")
  monkeypatch.setenv("CXX", _fake_compiler(tmp_path, "import time; time.sleep(30)"))
  with pytest.warns(RuntimeWarning, match=r"ran past 0.5 s \(MTL_JAX_KERNEL_BUILD_TIMEOUT\)"):
    assert build._load() is None
  assert list((tmp_path / "cache").iterdir()) == []


def test_the_cache_follows_xdg_cache_home(tmp_path, monkeypatch):
  monkeypatch.delenv("MTL_JAX_KERNEL_CACHE", raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert build.cache_dir() == tmp_path / "mtl_jax" / "kernels"
  monkeypatch.setenv("MTL_JAX_KERNEL_CACHE", str(tmp_path / "mine"))
  assert build.cache_dir() == tmp_path / "mine"


def test_a_build_removes_stale_and_half_written_libraries(tmp_path, monkeypatch):
  cache = tmp_path / "cache"
  monkeypatch.setenv("MTL_JAX_KERNEL_CACHE", str(cache))
  cache.mkdir()
  month = 31 * 24 * 3600
  files = {"kernels_cpu-old.so": month, "kernels_cpu-recent.so": 60,
           "tmpcrashed.so": 2 * 3600, "tmpbuilding.so": 60}
  for name, age in files.items():
    (cache / name).write_bytes(b"x")
    os.utime(cache / name, (time.time() - age, time.time() - age))
  compiler = _fake_compiler(tmp_path, "")
  target = build._library_path(compiler)
  build._compile(compiler, target)
  assert sorted(p.name for p in cache.iterdir()) == sorted(
      ["kernels_cpu-recent.so", "tmpbuilding.so", target.name])


def test_on_macos_a_missing_toolchain_is_an_error_not_an_installer(monkeypatch):
  calls = []

  def run(command, **kwargs):
    calls.append(command)
    return subprocess.CompletedProcess(command, 2, "", "error: no developer tools")

  monkeypatch.setattr(build.platform, "system", lambda: "Darwin")
  monkeypatch.setattr(build.subprocess, "run", run)
  with pytest.raises(RuntimeError, match="xcode-select -p failed"):
    build._compile("c++", Path("/nonexistent/x.so"))
  assert calls == [["xcode-select", "-p"]]  # the compiler itself never ran


@pytest.mark.skipif(not (sys.platform.startswith("linux") and os.environ.get("CI")),
                    reason="CI on Linux must build the kernels; elsewhere the XLA path serves")
def test_the_kernels_build_on_linux_ci():
  assert build._load() is not None

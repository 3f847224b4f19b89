"""benchmarks/attention_builds.py: a tiny paired run of two builds of the attention kernel."""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from mtl_jax.kernels import native_kernels_available

REPO = pathlib.Path(__file__).resolve().parents[2]
needs_checkout = pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                                    reason="needs the git checkout (it builds a revision's source)")


@pytest.mark.skipif(not native_kernels_available(), reason="the native CPU kernels did not build")
@needs_checkout
def test_a_tiny_paired_run_against_head(tmp_path):
  out = tmp_path / "builds.json"
  done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "attention_builds.py"),
                         "--base", "HEAD", "--batch", "2", "--length", "20", "--heads", "2",
                         "--head-dim", "8", "--dropout", "0.2", "--pairs", "2",
                         "--json", str(out)], capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  result = json.loads(out.read_text())
  assert [len(result[name]["ratios"]) for name in ("forward + backward", "forward")] == [2, 2]
  # HEAD's kernel and the working tree's compute the same function (the same source on a
  # clean checkout; otherwise an edit that must keep the function).
  assert result["max_gradient_difference"] < 1e-5


@needs_checkout
def test_an_unknown_revision_is_a_clear_error():
  done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "attention_builds.py"),
                         "--base", "no-such-revision", "--pairs", "1"],
                        capture_output=True, text=True, timeout=600)
  assert done.returncode != 0
  assert "git show no-such-revision:mtl_jax/kernels/attention_cpu.cc failed" in done.stderr

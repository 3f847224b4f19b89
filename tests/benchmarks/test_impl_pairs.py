"""benchmarks/impl_pairs.py: tiny paired runs, both steps computing the same losses."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from mtl_jax.kernels import blas

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.skipif(blas.blas_provider() is None, reason="the native CPU kernels did not build")
@pytest.mark.parametrize("option", ["matmul_impl", "norm_impl"])
def test_a_tiny_paired_run(tmp_path, option):
  out = tmp_path / "ab.json"
  done = subprocess.run([sys.executable, str(BENCHMARKS / "impl_pairs.py"), "--option", option,
                         "--tiny", "--batch-per-task", "2", "--length", "16", "--dropout", "0.1",
                         "--pairs", "2", "--json", str(out)],
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  result = json.loads(out.read_text())
  assert result["option"] == option and result["b"] == "xla" and result["a"] != "xla"
  assert len(result["ratios"]) == 2 and result["blas"] in ("mkl", "openblas")
  # Same batches, same keys, same function: only rounding tells the two steps apart.
  np.testing.assert_allclose(result["last_losses"][result["a"]],
                             result["last_losses"]["xla"], rtol=1e-4)

"""benchmarks/step_profile.py: its HLO kinds on functions whose ops are known, and a tiny run."""

import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from mtl_jax.encoders import dense
from mtl_jax.kernels import blas

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import step_profile  # noqa: E402


def _kinds(function, *args):
  table = step_profile.parse_hlo(jax.jit(function).lower(*args).compile().as_text())
  return {info["kind"] for info in table.values()}


def test_each_instruction_gets_the_kind_of_the_work_it_does():
  a = jnp.ones((64, 32), jnp.float32)
  b = jnp.ones((32, 16), jnp.float32)
  assert "matrix products" in _kinds(lambda a, b: jnp.tanh(a @ b), a, b)
  assert "reductions" in _kinds(lambda a: jnp.sum(a * a, axis=0), a)
  assert _kinds(lambda a: jnp.sin(a) * 2.0, a) == {"other elementwise"}
  # XLA folds the + 0 away: what is left is the transposing copy alone.
  assert _kinds(lambda a: a.T + 0.0, a) == {"copies and transposes"}


@pytest.mark.skipif(blas.blas_provider() is None, reason="the native CPU kernels did not build")
def test_the_blas_custom_call_is_a_matrix_product():
  a = jnp.ones((64, 32), jnp.float32)
  b = jnp.ones((32, 16), jnp.float32)
  assert _kinds(dense.blas_matmul, a, b) == {"matrix products"}


def test_a_tiny_step_is_profiled_op_by_op(tmp_path):
  out = tmp_path / "profile.json"
  done = subprocess.run([sys.executable, str(BENCHMARKS / "step_profile.py"), "--tiny",
                         "--batch-per-task", "2", "--length", "16", "--dropout", "0",
                         "--steps", "2", "--top", "5", "--json", str(out)],
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  result = json.loads(out.read_text())
  assert result["instructions_s"] > 0
  assert abs(sum(result["by_kind"].values()) - result["instructions_s"]) < 1e-9
  ops = {entry["op"]: entry["kind"] for entry in result["by_op"]}
  # The encoder's own products appear, layers folded, each a matrix product.
  forward_qkv = [op for op in ops if op.endswith("layer_*/attention/qkv/dot_general")
                 and "transpose" not in op]
  assert forward_qkv and all(ops[op] == "matrix products" for op in forward_qkv), ops
  assert "the 5 ops taking the most time" in done.stdout

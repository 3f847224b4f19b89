"""benchmarks/step_memory.py's byte count per op, on an HLO whose passes are known."""

import pathlib
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import step_memory  # noqa: E402


def test_one_elementwise_pass_reads_and_writes_its_array_once():
  x = jnp.ones((1000,), jnp.float32)
  text = jax.jit(lambda x: jnp.sin(x) * 2.0).lower(x).compile().as_text()
  rows = step_memory.bytes_by_op(text, 5)
  # sin and the multiply fuse into one pass: 4,000 bytes read, 4,000 written.
  assert sum(moved for moved, _, _ in rows) == 8000

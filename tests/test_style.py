"""The code keeps the project's style: `ruff check` (config in pyproject.toml) finds nothing."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
  result = subprocess.run(
      [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
       "mtl_jax", "tests", "benchmarks", "experiments"],
      cwd=ROOT, capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr

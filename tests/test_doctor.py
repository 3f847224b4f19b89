"""`mtl-jax doctor`, through the real command."""

import os
import subprocess
import sys

import jax


def _doctor(**env):
  result = subprocess.run([sys.executable, "-m", "mtl_jax.cli", "doctor"], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300)
  assert result.returncode == 0, result.stderr
  return result.stdout.splitlines()


def test_doctor_names_versions_devices_kernel_and_caches(tmp_path):
  lines = _doctor(MTL_JAX_KERNEL_CACHE=str(tmp_path / "kernels"))
  assert f"jax {jax.__version__}" in lines
  # The tests emulate 8 CPU devices (conftest's XLA_FLAGS, inherited).
  assert f"jax backend cpu: {jax.device_count()} device(s), cpu" in lines
  assert f"kernel cache: {tmp_path / 'kernels'}" in lines
  assert any(line.startswith("data cache (Hugging Face datasets): ") for line in lines)
  off = _doctor(MTL_JAX_NATIVE_KERNELS="0")
  assert "CPU kernels (attention, layer norm, BLAS call): off (MTL_JAX_NATIVE_KERNELS=0)" in off
  assert any(line.startswith("attention_impl='auto' and norm_impl='auto' use: XLA's ops")
             for line in off)
  assert "BLAS for the dense products: none (no kernel)" in off
  assert "matmul_impl='auto' uses: XLA's dot_general" in off

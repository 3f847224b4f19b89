#!/usr/bin/env bash
# The GPU measurements of issue 19 in one command (see benchmarks/gpu_check.py):
#   bash benchmarks/gpu_check.sh [OUT]   # on a lent GPU machine: installs, then measures
# Installs JAX with its CUDA plugin and PyTorch from the package registries into
# .venv-gpu, then writes OUT/gpu_check.json and OUT/gpu_check.md (default OUT: gpu_check).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu_check}"
python3 -m venv .venv-gpu
. .venv-gpu/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e . "jax[cuda12]" torch
python -c "import jax; assert jax.default_backend() == 'gpu', jax.devices()"
python benchmarks/gpu_check.py --out "$OUT"

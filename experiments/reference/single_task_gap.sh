#!/usr/bin/env bash
# The single-task NER gap, side by side: the PyTorch reference and mtl_jax on the same
# recipe, data order and seeds (seed setup 1's budget: 300 steps of 16, lr 5e-5).
#   bash experiments/reference/single_task_gap.sh [OUT=runs/gap] [CPU=1]
# Each run is one process on one core; finished runs (a metrics.json) are skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # this checkout's mtl_jax
out=${1:-runs/gap}
cpu=${2:-1}
config=experiments/configs/agnews_conll.py:tasks=conll2003_ner,steps=300
for seed in 0 1 2; do
  dir=$out/reference/seed_$seed
  [ -f "$dir/metrics.json" ] || taskset -c "$cpu" python experiments/reference/torch_recipe.py \
      --config "$config,seed=$seed" --out "$dir" --threads 1
  dir=$out/ours/seed_$seed
  [ -f "$dir/metrics.json" ] || taskset -c "$cpu" python -m mtl_jax.cli train --config "$config,seed=$seed" \
      --workdir "$dir" --no-progress
done

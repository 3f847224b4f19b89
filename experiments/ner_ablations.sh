#!/usr/bin/env bash
# The multi-task NER loss of seed setup 1: per-task optimizer treatments, one
# run each (seed 0, 300 steps, lr 5e-5; experiments/RESULTS.md, "The multi-task
# NER loss"). Each run resumes from its checkpoint when restarted.
#   CPU=1 bash experiments/ner_ablations.sh     # one core (taskset), beside other work
set -euo pipefail
cd "$(dirname "$0")/.."
run() {  # run NAME METHOD [--set KEY=VALUE ...]
  local name=$1 method=$2; shift 2
  ${CPU:+taskset -c $CPU} mtl-jax train --no-progress \
      --config "experiments/configs/balancing.py:method=$method,steps=300" \
      --workdir "runs/ablation/$name" "$@"
}
run task_rms task_rms
run task_clip_noglobal "task_clip(max_norm=1.0)" --set optimizer.clip_norm=0
run task_rms_tensor "task_rms(per='tensor')"

#!/usr/bin/env bash
# Per-task clipping against equal weighting on seed setup 1 (AG News + CoNLL-2003,
# 300 steps, lr 5e-5; experiments/RESULTS.md, "Per-task clipping over seeds").
#   1. seeds 1 and 2 of task_clip(max_norm=1.0) with the global clip off (seed 0 is
#      runs/ablation/task_clip_noglobal of ner_ablations.sh);
#   2. max_norm chosen on a held-out tenth of each task's train split (seed 0,
#      train.eval_split=heldout), never on the dev split the table reports.
# Each run resumes from its checkpoint when the script is restarted; finished runs
# are skipped.
#   CPU=1 bash experiments/task_clip.sh     # one core (taskset), beside other work
set -euo pipefail
cd "$(dirname "$0")/.."
run() {  # run WORKDIR METHOD SEED [--set KEY=VALUE ...]
  local workdir=$1 method=$2 seed=$3; shift 3
  if [ -f "$workdir/metrics.json" ]; then echo "done: $workdir"; return; fi
  ${CPU:+taskset -c $CPU} mtl-jax train --no-progress \
      --config "experiments/configs/balancing.py:method=$method,steps=300,seed=$seed" \
      --workdir "$workdir" --set optimizer.clip_norm=0 "$@"
}
for seed in 1 2; do
  run "runs/task_clip/seed$seed" "task_clip(max_norm=1.0)" "$seed"
done
HELDOUT=(--set tasks.ag_news.source.holdout=0.1 --set tasks.conll2003_ner.source.holdout=0.1
         --set train.eval_split=heldout)
for max_norm in 0.5 2.0 1.0; do
  run "runs/task_clip/heldout_max_norm$max_norm" "task_clip(max_norm=$max_norm)" 0 "${HELDOUT[@]}"
done

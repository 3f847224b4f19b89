#!/usr/bin/env bash
# What budget the single-task GLUE runs below their targets need (issue 15, item 4;
# experiments/RESULTS.md, "GLUE, tuned, at a real budget").
#   tuned_glue.sh's single-task recipe (16 examples a step, a tenth of train held out, linear
#   decay after 10% warm-up, the rate its selection chose at 1,000 steps), seed 0, at a larger
#   budget: CoLA 3,000 steps (6 epochs; 1,000 was 2) and SST-2 4,000 (1 epoch; 1,000 was a
#   quarter), the two whose held-out scores were still rising at step 875. Evaluated on the
#   held-out slice every 250 steps, patience 3, the best checkpoint kept; dev is scored once at
#   the end, for the record (metrics_eval.json). MRPC (already 5 epochs) and RTE (stopped by
#   patience) are left out: their gap is not the budget. Token compaction on (the same function).
# Stopping and starting it again continues where it was.
#   CPU=0 bash experiments/glue_single_budget.sh   # one core (taskset)
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/env.sh  # huge pages, the compilation cache
for run in "cola 5e-5 3000" "sst2 1e-4 4000"; do
  read -r task rate steps <<< "$run"
  workdir="experiments/results/glue_single_budget/glue_${task}"
  if [[ -f "$workdir/metrics.json" ]]; then echo "$workdir: done already"; continue; fi
  ${CPU:+taskset -c $CPU} mtl-jax train --no-progress \
      --config "experiments/configs/glue_mtl.py:tasks=${task},steps=${steps}" \
      --workdir "$workdir" \
      --set "tasks.glue_${task}.source.holdout=0.1" --set train.eval_split=heldout \
      --set train.eval_every=250 --set train.patience=3 --set train.log_every=50 \
      --set checkpoint.best_metric=main_score --set checkpoint.keep=1 \
      --set "optimizer.learning_rate=${rate}" --set train.token_buckets=8 "$@"
done

#!/usr/bin/env bash
# Per-task clipping on the five GLUE tasks against the tuned single-task baselines of
# tuned_glue.sh (issue 15, item 4; experiments/RESULTS.md, "GLUE, tuned, at a real budget").
#   The recipe of tuned_glue.sh's multi-task run (1,000 steps of 16 per task, a tenth of each
#   train split held out and scored every 125 steps, patience 3, the best checkpoint scored on
#   dev), with each task's encoder gradient clipped to norm 1 before the sum and the global
#   clip off (`task_clip(max_norm=1.0)`, optimizer.clip_norm=0), diagnostics on. Its learning
#   rate is the one the equal-weight multi-task run chose (2e-4), not chosen again. The
#   single-task runs are read from experiments/results/tuned_glue (--baselines), not trained.
#   Seed 0's run is the selection candidate at 2e-4 (selection/multi_task/lr_0.0002), first
#   trained in the tenth session as a held-out ablation against the equal-weight run, then
#   moved here (same config, key for key); only seeds 1 and 2 train.
#   Seed 2 ran with token compaction (`--set train.token_buckets=8`, given on the command line
#   of its process, 2026-12-07 21:13: the same function, dropout's hidden-state masks drawn
#   over the compact buffer); `compare` counts the runs as one recipe either way.
# Stopping and starting it again continues where it was.
#   CPU=1 bash experiments/tuned_glue_task_clip.sh   # one core (taskset)
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/env.sh  # huge pages, the compilation cache
${CPU:+taskset -c $CPU} mtl-jax compare --no-progress \
    --config experiments/configs/glue_mtl.py:steps=1000 \
    --workdir experiments/results/tuned_glue_task_clip --seeds 0,1,2 \
    --baselines experiments/results/tuned_glue --learning-rates 2e-4 --holdout 0.1 \
    --set tasks.glue_stsb.kind_options.normalize=True \
    --set train.eval_every=125 --set train.patience=3 \
    --set checkpoint.best_metric=main_score --set checkpoint.keep=1 \
    --set "balancing.method=task_clip(max_norm=1.0)" --set optimizer.clip_norm=0 \
    --set balancing.diagnostics=True "$@"

#!/usr/bin/env bash
# Per-task clipping on the five GLUE tasks at its own learning rate (issue 15, item 4;
# experiments/RESULTS.md, "GLUE, tuned, at a real budget").
#   tuned_glue_task_clip.sh ran per-task clipping at the rate equal weighting chose (2e-4),
#   not chosen for it. This runs the whole grid of tuned_glue.sh (5e-5, 1e-4, 2e-4) for it on
#   the held-out tenth (seed 0), then the comparison at the chosen rate over seeds 0, 1, 2,
#   against the same single-task baselines (--baselines). The finished 2e-4 runs (the
#   candidate and seeds 1, 2) are read from tuned_glue_task_clip (--reuse), so only the new
#   rates train, and the other seeds only if one of them is chosen. With token compaction
#   (the same function; compare counts it as the same run).
# Stopping and starting it again continues where it was.
#   CPU=0 bash experiments/tuned_glue_task_clip_grid.sh   # one core (taskset)
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/env.sh  # huge pages, the compilation cache
${CPU:+taskset -c $CPU} mtl-jax compare --no-progress \
    --config experiments/configs/glue_mtl.py:steps=1000 \
    --workdir experiments/results/tuned_glue_task_clip_grid --seeds 0,1,2 \
    --baselines experiments/results/tuned_glue --reuse experiments/results/tuned_glue_task_clip \
    --learning-rates 5e-5,1e-4,2e-4 --holdout 0.1 \
    --set tasks.glue_stsb.kind_options.normalize=True \
    --set train.eval_every=125 --set train.patience=3 \
    --set checkpoint.best_metric=main_score --set checkpoint.keep=1 \
    --set "balancing.method=task_clip(max_norm=1.0)" --set optimizer.clip_norm=0 \
    --set balancing.diagnostics=True --set train.token_buckets=8 "$@"

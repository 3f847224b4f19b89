#!/usr/bin/env bash
# MT-DNN's second stage on our GLUE recipe, one seed (issue 15, item 4; experiments/RESULTS.md,
# "GLUE, tuned, at a real budget", "Multi-task, then each task fine-tuned alone").
#   Liu et al. (2019) fine-tune each task alone from the multi-task encoder, and report their
#   GLUE gains after that stage. Here: the per-task-clipping five-task run of seed 1
#   (tuned_glue_task_clip.sh, its best checkpoint, step 875) exported as a Hugging Face folder
#   (`mtl-jax export`: encoder and tokenizer; each task's head starts anew), then RTE, MRPC and
#   CoLA trained alone from it with tuned_glue.sh's single-task recipe of seed 1 (the rate its
#   selection chose per task, 1,000 steps of 16, a tenth of train held out, the same slice as
#   the multi-task run's, scored every 125 steps, patience 3; dev scored once at the kept
#   checkpoint). The three tasks where the multi-task run was level with or furthest below
#   the single-task runs; a pilot, so one seed.
#   The recorded runs (2026-12-08, library at `dbbc750`) read the same export from
#   /tmp/exp/mt_seed1 (`mtl-jax export ... --step best`), so their config.json names that path.
# Stopping and starting it again continues where it was.
#   CPU=0 bash experiments/glue_finetune_pilot.sh   # one core (taskset)
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/env.sh  # huge pages, the compilation cache
out=experiments/results/glue_finetune_pilot
source_run=experiments/results/tuned_glue_task_clip/multi_task/seed_1
if [[ ! -d "$out/exported/encoder" ]]; then
  rm -rf "$out/exported"
  mtl-jax export --workdir "$source_run" --out "$out/exported" --step best
fi
for run in "rte 5e-5" "mrpc 1e-4" "cola 5e-5"; do
  read -r task rate <<< "$run"
  workdir="$out/seed_1/glue_${task}"
  if [[ -f "$workdir/metrics.json" ]]; then echo "$workdir: done already"; continue; fi
  ${CPU:+taskset -c $CPU} mtl-jax train --no-progress \
      --config "experiments/configs/glue_mtl.py:tasks=${task},steps=1000,seed=1" \
      --workdir "$workdir" \
      --set "encoder.pretrained=$out/exported/encoder" --set "tokenizer.path=$out/exported/tokenizer" \
      --set "tasks.glue_${task}.source.holdout=0.1" --set train.eval_split=heldout \
      --set train.eval_every=125 --set train.patience=3 \
      --set checkpoint.best_metric=main_score --set checkpoint.keep=1 \
      --set "optimizer.learning_rate=${rate}" --set train.token_buckets=8 "$@"
done

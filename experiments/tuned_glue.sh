#!/usr/bin/env bash
# Seed setup 2 (GLUE SST-2, CoLA, MRPC, RTE, STS-B, pretrained MiniLM) at a real budget,
# each setting's learning rate chosen on a held-out tenth of its train split (issue 15,
# item 4; experiments/RESULTS.md, "GLUE, tuned, at a real budget").
#   1,000 steps of 16 examples per task, every task in every step: 7 epochs of RTE's
#   train split after the hold-out, 5 of MRPC, 3 of STS-B, 2 of CoLA, 16k of SST-2's 61k
#   examples; 10% warm-up, linear decay; an evaluation on the held-out slice every 125
#   steps, early stopping after 3 without a better main score, each run scored on dev at
#   its best checkpoint; equal loss weights with STS-B's target scaled to 0-1 (raw, its
#   squared error takes the shared encoder: RESULTS.md, "GLUE"), global clip 1.0.
# Stopping and starting it again continues where it was (finished runs are skipped, an
# interrupted one resumes from its checkpoint); one process per core can share the work.
# The workdir's small records are committed (its .gitignore keeps the weights out).
#   CPU=1 bash experiments/tuned_glue.sh   # one core (taskset)
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/env.sh  # huge pages, the compilation cache
${CPU:+taskset -c $CPU} mtl-jax compare --no-progress \
    --config experiments/configs/glue_mtl.py:steps=1000 \
    --workdir experiments/results/tuned_glue --seeds 0,1,2 \
    --learning-rates 5e-5,1e-4,2e-4 --holdout 0.1 \
    --set tasks.glue_stsb.kind_options.normalize=True \
    --set train.eval_every=125 --set train.patience=3 \
    --set checkpoint.best_metric=main_score --set checkpoint.keep=1 "$@"

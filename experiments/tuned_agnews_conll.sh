#!/usr/bin/env bash
# Seed setup 1 (AG News + CoNLL-2003 NER, pretrained MiniLM) at a real budget, each
# setting's learning rate chosen on a held-out tenth of its train split (issue 15,
# items 2 and 4; experiments/RESULTS.md, "Tuned, at a real budget").
#   1,760 steps of 16 examples per task: 2 epochs of CoNLL-2003's train split (7 of
#   the AG News subset's), 10% warm-up, linear decay; an evaluation on the held-out
#   slice every 220 steps, early stopping after 3 without a better main score, each
#   run scored on dev at its best checkpoint; equal loss weights, global clip 1.0.
# Stopping and starting it again continues where it was (finished runs are skipped,
# an interrupted one resumes from its checkpoint). The workdir is
# experiments/results/tuned_agnews_conll: its small records are committed (its
# .gitignore keeps the weights out), so a session on a new machine skips the runs an
# earlier session finished; only an unfinished run starts again there.
#   CPU=1 bash experiments/tuned_agnews_conll.sh   # one core (taskset)
set -euo pipefail
cd "$(dirname "$0")/.."
${CPU:+taskset -c $CPU} mtl-jax compare --no-progress \
    --config experiments/configs/agnews_conll.py:steps=1760 \
    --workdir experiments/results/tuned_agnews_conll --seeds 0,1,2 \
    --learning-rates 5e-5,1e-4,2e-4 --holdout 0.1 \
    --set optimizer.warmup_steps=176 --set train.eval_every=220 --set train.patience=3 \
    --set checkpoint.best_metric=main_score --set checkpoint.keep=1 "$@"

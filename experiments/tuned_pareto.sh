#!/usr/bin/env bash
# The static-weight Pareto front of AG News + CoNLL-2003 at the tuned multi-task learning rate,
# with balancing methods placed against it (issue 15, item 3; experiments/RESULTS.md, "The
# Pareto front at the tuned rate").
#   The recipe of tuned_agnews_conll.sh's multi-task runs: 1,760 steps of 16 examples per task,
#   lr 2e-4 (the rate its selection chose for the multi-task run), 10% warm-up, a tenth of each
#   train split held out and scored every 220 steps, early stopping after 3 evaluations without
#   a better main score, each run scored on dev at its best checkpoint. Static weightings
#   w = 0.1 ... 0.9 (AG News's share; 0.5 is equal weighting) and five methods, 3 seeds:
#   per-task clipping (the library's answer to the multi-task NER loss at 300 steps), and the
#   usual comparisons (uncertainty weighting, FAMO, PCGrad, CAGrad).
#   Runs go seed by seed, so a front stopped part-way has whole seeds. w = 0.5 is equal
#   weighting at this recipe: tuned_agnews_conll.sh's multi-task runs, read (--reuse).
#   Token compaction (train.token_buckets=8) from the eleventh session on: static w = 0.75 seed 0
#   from step 520 and every run after it (w = 0.1 and 0.25 at seed 0 ran padded). The same
#   function; dropout draws its hidden-state masks over the compact buffer. The methods that
#   encode each task apart (per-task clipping, PCGrad, CAGrad) compact each task's pass.
# Stopping and starting it again continues where it was; one process per core can share the
# work. The workdir's small records are committed (its .gitignore keeps the weights out).
#   CPU=1 bash experiments/tuned_pareto.sh   # one core (taskset)
set -euo pipefail
cd "$(dirname "$0")/.."
# Huge pages for XLA's per-step buffers: 6-11% off a CPU step (README, "Speed on CPU").
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}"
# JAX's persistent compilation cache: a resumed run, another seed or setting loads its step
# programs instead of compiling them again (README, "Speed on CPU"); empty turns it off.
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR-$HOME/.cache/mtl_jax/jax}"
${CPU:+taskset -c $CPU} mtl-jax pareto --no-progress \
    --config experiments/configs/agnews_conll.py:steps=1760 \
    --workdir experiments/results/tuned_pareto --tasks ag_news,conll2003_ner \
    --weights 0.1,0.25,0.5,0.75,0.9 \
    --methods "task_clip(max_norm=1.0);uncertainty;famo;pcgrad;cagrad(c=0.4)" \
    --seeds 0,1,2 --reuse experiments/results/tuned_agnews_conll \
    --set optimizer.learning_rate=2e-4 --set optimizer.warmup_steps=176 \
    --set tasks.ag_news.source.holdout=0.1 --set tasks.conll2003_ner.source.holdout=0.1 \
    --set train.eval_split=heldout --set train.eval_every=220 --set train.patience=3 \
    --set checkpoint.best_metric=main_score --set checkpoint.keep=1 \
    --set train.token_buckets=8 "$@"

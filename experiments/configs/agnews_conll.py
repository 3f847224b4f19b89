"""Seed setup 1 on the full data: AG News topics + CoNLL-2003 NER, pretrained MiniLM.

    mtl-jax train --config experiments/configs/agnews_conll.py --workdir runs/agnews_conll
    # single-task baselines, same budget (steps, batch size per task, schedule):
    mtl-jax train --config experiments/configs/agnews_conll.py:tasks=ag_news --workdir runs/ag_news
    mtl-jax train --config experiments/configs/agnews_conll.py:tasks=conll2003_ner \\
        --workdir runs/conll

Arguments (after ':'): tasks=a+b (default both), steps=N, seed=N.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import DATA, MINILM, parse_arg  # noqa: E402

from mtl_jax.config import default_config  # noqa: E402

DATA_DIRS = {"ag_news": "ag_news_subset", "conll2003_ner": "conll2003"}


def get_config(arg=None):
  args = parse_arg(arg, tasks="ag_news+conll2003_ner", steps=600, seed=0)
  config = default_config()
  config.seed = args["seed"]
  config.tasks = {name: {"data_dir": os.path.join(DATA, DATA_DIRS[name])}
                  for name in args["tasks"].split("+")}
  config.encoder.pretrained = MINILM
  config.optimizer.update(learning_rate=5e-5, warmup_steps=60, schedule="linear")
  config.train.update(steps=args["steps"], batch_size=16, buckets=(32, 64, 128),
                      log_every=50, eval_batch_size=64)
  return config

"""Seed setup 2: GLUE SST-2, CoLA, MRPC, RTE and STS-B, one shared pretrained MiniLM.

One encoder (all-MiniLM-L6-v2) with a head per task, against single-task
runs of the same budget (steps, batch size per task, schedule), all read
from the GLUE TSV files in ../shared/data/glue and scored on their dev sets:

    mtl-jax train --config experiments/configs/glue_mtl.py --workdir runs/glue_mtl
    mtl-jax train --config experiments/configs/glue_mtl.py:tasks=rte --workdir runs/glue_rte
    (likewise tasks=sst2, cola, mrpc, stsb)

Every step trains every task on `batch_size` examples, so each task sees
the same examples in the joint and the single-task runs. The published
finding to compare against (MT-DNN, Liu et al. 2019): multi-task training
helps most on the small tasks, RTE and MRPC.

Arguments (after ':'): tasks=a+b (GLUE ids; default all five), steps=N, seed=N.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import DATA, MINILM, parse_arg  # noqa: E402

from mtl_jax.config import default_config  # noqa: E402
from mtl_jax.tasks.glue import GLUE_TASKS  # noqa: E402


def get_config(arg=None):
  args = parse_arg(arg, tasks="sst2+cola+mrpc+rte+stsb", steps=2000, seed=0)
  config = default_config()
  config.seed = args["seed"]
  config.tasks = {
      f"glue_{glue_id}": {"data_dir": os.path.join(DATA, "glue", GLUE_TASKS[glue_id].folder)}
      for glue_id in args["tasks"].split("+")}
  config.encoder.pretrained = MINILM
  config.optimizer.update(learning_rate=5e-5, warmup_steps=args["steps"] // 10,
                          schedule="linear")
  # 128 tokens, as GLUE fine-tuning usually takes: 12% of RTE's pairs are longer
  # and truncated (the run reports how many).
  config.train.update(steps=args["steps"], batch_size=16, buckets=(32, 64, 128),
                      log_every=50, eval_batch_size=64)
  return config

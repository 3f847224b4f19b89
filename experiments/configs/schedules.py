"""Training schedules compared: AG News topics + CoNLL-2003 NER, pretrained MiniLM, same budget.

Every row is the same run (model, optimizer, steps, batch size per task) but
for `config.schedule`; task relatedness is measured along the way
(`relatedness.json` / `relatedness.png` in the workdir):

    mtl-jax train --config experiments/configs/schedules.py:schedule=joint \\
        --workdir runs/sched_joint
    mtl-jax train --config experiments/configs/schedules.py:schedule=alternating \\
        --workdir runs/sched_alternating
    mtl-jax train --config experiments/configs/schedules.py:schedule=proportional \\
        --workdir runs/sched_proportional
    mtl-jax train --config experiments/configs/schedules.py:schedule=temperature \\
        --workdir runs/sched_temperature
    mtl-jax train --config experiments/configs/schedules.py:schedule=progressive \\
        --workdir runs/sched_progressive
    mtl-jax train --config experiments/configs/schedules.py:schedule=ramp \\
        --workdir runs/sched_ramp

Arguments (after ':'): schedule=NAME (below), steps=N, seed=N, measure=N
(relatedness measurements over the run, 0 for none).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agnews_conll import get_config as agnews_conll_config  # noqa: E402
from common import parse_arg  # noqa: E402


def schedules(steps: int) -> dict[str, str]:
  """The compared schedules, by name (their `config.schedule` strings)."""
  return {
      "joint": "joint",
      "alternating": "alternating",
      # AG News 4,000 examples, CoNLL-2003 14,041 sentences.
      "proportional": "proportional",
      "temperature": "temperature(temperature=2)",
      # NER alone for the first quarter, then both.
      "progressive": ("progressive(main_task='conll2003_ner', "
                      f"start_steps={{'ag_news': {steps // 4}}})"),
      # Both every step; AG News's weight ramps from 0 to 1 over the first half.
      "ramp": f"joint(weights={{'ag_news': [(0, 0.0), ({steps // 2}, 1.0)]}})",
  }


def get_config(arg=None):
  args = parse_arg(arg, schedule="joint", steps=600, seed=0, measure=10)
  known = schedules(args["steps"])
  if args["schedule"] not in known:
    raise ValueError(f"unknown schedule {args['schedule']!r}; known: {sorted(known)}")
  config = agnews_conll_config(f"steps={args['steps']},seed={args['seed']}")
  config.schedule = known[args["schedule"]]
  if args["measure"]:
    config.relatedness.measure_every = max(args["steps"] // args["measure"], 1)
  return config

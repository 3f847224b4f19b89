"""Balancing methods side by side: AG News + CoNLL-2003 NER from pretrained MiniLM.

One command per method, the same tasks, data, steps, batch size and hard
sharing (the seed-setup-1 budget of `agnews_conll.py`); only
`config.balancing.method` changes, with diagnostics on so every run logs per-task
gradient norms and their cosine:

    for method in gradnorm uncertainty pcgrad cagrad; do
      mtl-jax train --config experiments/configs/balancing.py:method=$method \
          --workdir runs/balancing/$method
    done

Arguments (after ':'): method (a `mtl_jax.weighting` spec without spaces or
commas, e.g. gradnorm, pcgrad, 'cagrad(c=0.4)'), mode (the gradient mode:
auto = the method's paper, representation, last_layer, full), steps=N, seed=N.

Every name of `mtl_jax.weighting.names()` runs here by name alone; the few
whose defaults do not fit two tasks get the arguments of `TWO_TASKS` (static:
equal weights; trimmed_mean: nothing to trim from two). Krum needs at least
three tasks whatever its arguments (torchjd's rule), so it is refused here
with that reason.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import agnews_conll  # noqa: E402
from common import parse_arg  # noqa: E402

from mtl_jax import weighting  # noqa: E402


# The spec a bare name stands for on this two-task setup, where its defaults do not fit.
TWO_TASKS = {"static": "static(weights=[1.0, 1.0])",
             "trimmed_mean": "trimmed_mean(trim_number=0)"}


def get_config(arg=None):
  args = parse_arg(arg, method="equal", mode="auto", steps=600, seed=0)
  args["method"] = TWO_TASKS.get(args["method"], args["method"])
  config = agnews_conll.get_config(f"steps={args['steps']},seed={args['seed']}")
  # Fails here, naming the known methods, rather than after the data is read.
  weighting.from_spec(args["method"], num_tasks=len(config.tasks))
  config.balancing.method = args["method"]
  config.balancing.update(gradient_mode=args["mode"], diagnostics=True)
  return config

"""Sharing architectures side by side: AG News + CoNLL-2003 NER from pretrained MiniLM.

One command per architecture, the same tasks, data, steps and batch size
(the seed-setup-1 budget of `agnews_conll.py`); only `config.sharing` (and
the adapters' learning rate, see below) changes:

    for kind in hard layerwise adapters mtl_attention cross_stitch task_embedding; do
      mtl-jax train --config experiments/configs/sharing.py:kind=$kind \
          --workdir runs/sharing/$kind
    done
    mtl-jax train --config experiments/configs/sharing.py:kind=adapters,placement=pfeiffer \
        --workdir runs/sharing/adapters_pfeiffer

Arguments (after ':'): kind, placement (adapters), steps=N, seed=N,
lr=X (0: the architecture's default below).

Per architecture (MiniLM has 6 layers):
* layerwise: layers 0-3 shared, layers 4-5 one copy per task.
* adapters: Houlsby (or Pfeiffer) adapters of width 64 over the frozen
  encoder; only adapters and heads train, so they take a larger learning
  rate (1e-3; Houlsby et al. searched 3e-5 to 3e-3), as is usual.
* mtl_attention: layers 0-4 shared, layer 5 per task, attention width 128.
* cross_stitch: a full copy of the 6 layers per task (embeddings shared),
  cross-stitch units after every layer, initialised at (0.9, 0.1).
* task_embedding: one encoder, a learned task vector added to its input.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import agnews_conll  # noqa: E402
from common import parse_arg  # noqa: E402

SHARING = {
    "hard": {},
    "layerwise": {"shared_layers": 4},
    "adapters": {"size": 64, "placement": "houlsby", "freeze_encoder": True},
    "mtl_attention": {"shared_layers": 5, "attention_size": 128},
    "cross_stitch": {"shared_layers": 0, "self_weight": 0.9},
    "task_embedding": {},
}
LEARNING_RATES = {"adapters": 1e-3}


def get_config(arg=None):
  args = parse_arg(arg, kind="hard", placement="houlsby", steps=600, seed=0, lr=0.0)
  kind = args["kind"]
  if kind not in SHARING:
    raise ValueError(f"unknown kind {kind!r}; known: {', '.join(SHARING)}")
  config = agnews_conll.get_config(f"steps={args['steps']},seed={args['seed']}")
  config.sharing.kind = kind
  if SHARING[kind]:
    config.sharing[kind].update(SHARING[kind])
  if kind == "adapters":
    config.sharing.adapters.placement = args["placement"]
  config.optimizer.learning_rate = (args["lr"] or
                                    LEARNING_RATES.get(kind, config.optimizer.learning_rate))
  return config

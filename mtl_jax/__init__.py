"""mtl_jax: multi-task learning for NLP in JAX/Flax.

One shared Transformer encoder, a head per task, trained jointly. The public
API is re-exported here; each sub-package holds one concern:

* `encoders`: the BERT-family encoder and Hugging Face checkpoints.
* `heads`: per-kind output modules and losses.
* `sharing`: how tasks share the encoder.
* `tasks`: Task, registry, sources, tokenization, batching.
* `weighting`: balancing methods (loss weighting, gradient aggregation).
* `training`: train state, steps, loop, checkpoints.
* `sharding`: device mesh, logical-axis rules, multi-host setup.
* `metrics`: per-task metrics and reports.
"""

from mtl_jax.config import apply_overrides, default_config, load_config, resolve
from mtl_jax.encoders import EncoderConfig, Encoder, export_pretrained, load_pretrained
from mtl_jax.predict import Predictor
from mtl_jax.sharing import HardSharingModel, TaskHead
from mtl_jax.tasks import Mixture, MixtureRegistry, Source, Task, TaskRegistry
from mtl_jax.training import TrainState, make_train_step, train
from mtl_jax.training.evaluate import evaluate_workdir as evaluate

__version__ = "0.1.0"

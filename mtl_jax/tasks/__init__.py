"""Tasks: definitions, registry, mixtures, sources, tokenization and batching."""

from mtl_jax.tasks import catalog  # registers the named tasks
from mtl_jax.tasks import glue  # registers the GLUE tasks and mixtures
from mtl_jax.tasks.kinds import KINDS, EncodedSplit, get_kind
from mtl_jax.tasks.mixture import Mixture, MixtureRegistry, rate_num_examples
from mtl_jax.tasks.sources import HELDOUT, DataError, RawSplit, Source, read_split
from mtl_jax.tasks.task import Task, TaskRegistry, task_from_config

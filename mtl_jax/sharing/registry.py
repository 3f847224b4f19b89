"""The sharing architectures by name, built from a run's `config.sharing`.

    config.sharing.kind = "adapters"                # which architecture
    config.sharing.adapters.placement = "pfeiffer"  # its options (one sub-dict per kind)

Every architecture has the model contract of `HardSharingModel` (`init`,
`init_boxed`, `logical_axes`, `encode`, `apply_heads`, `apply`,
`with_encoder`, `task_names`, `task_keys`, `frozen_keys`).
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

from mtl_jax.encoders.config import EncoderConfig
from mtl_jax.registry import Registry
from mtl_jax.sharing.adapters import AdapterModel
from mtl_jax.sharing.cross_stitch import CrossStitchModel
from mtl_jax.sharing.experts import CGCModel, ExpertsModel, MMoEModel
from mtl_jax.sharing.hard import HardSharingModel, TaskHead
from mtl_jax.sharing.layerwise import LayerwiseModel
from mtl_jax.sharing.mtl_attention import MultiTaskAttentionModel
from mtl_jax.sharing.task_embedding import TaskEmbeddingModel

ARCHITECTURES: Registry[type[HardSharingModel]] = Registry("sharing.kind")
for _name, _model in (("hard", HardSharingModel), ("layerwise", LayerwiseModel),
                      ("adapters", AdapterModel), ("mtl_attention", MultiTaskAttentionModel),
                      ("cross_stitch", CrossStitchModel),
                      ("task_embedding", TaskEmbeddingModel), ("mmoe", MMoEModel),
                      ("cgc", CGCModel), ("ple", ExpertsModel)):
  ARCHITECTURES.register(_name, _model)


def options_of(kind: str) -> dict[str, Any]:
  """An architecture's options and their defaults (its constructor's keywords)."""
  parameters = inspect.signature(ARCHITECTURES[kind]).parameters
  return {name: p.default for name, p in parameters.items()
          if p.default is not inspect.Parameter.empty}


def build_model(sharing: Mapping[str, Any], encoder_config: EncoderConfig,
                tasks: Sequence[TaskHead]) -> HardSharingModel:
  """The model of a run.

  Args:
    sharing: `config.sharing`: `kind` and, under the kind's name, its options.
    encoder_config: the encoder's architecture.
    tasks: the tasks' heads, in the run's task order.

  Returns:
    The model.

  Raises:
    ValueError: an unknown kind or option, or a bad option value (named).
  """
  kind = sharing["kind"]
  architecture = ARCHITECTURES[kind]  # an unknown kind: an error naming the closest
  options = dict(sharing.get(kind) or {})
  known = options_of(kind)
  for key in options:
    if key not in known:
      raise ValueError(f"sharing.{kind} has no option {key!r}; its options: "
                       f"{', '.join(known) or 'none'}")
  return architecture(encoder_config, tasks, **options)

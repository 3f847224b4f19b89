"""Sharing architectures: how the tasks share the encoder.

`build_model(config.sharing, ...)` picks one by name: hard, layerwise,
adapters, mtl_attention, cross_stitch, task_embedding, and the mixtures of
experts mmoe, cgc and ple (`experts.py`) (see each file).
"""

from mtl_jax.sharing.adapters import AdapterModel
from mtl_jax.sharing.cross_stitch import CrossStitchModel
from mtl_jax.sharing.experts import CGCModel, ExpertsModel, MMoEModel
from mtl_jax.sharing.hard import HardSharingModel, TaskHead
from mtl_jax.sharing.layerwise import LayerwiseModel
from mtl_jax.sharing.mtl_attention import MultiTaskAttentionModel, multi_task_attention
from mtl_jax.sharing.registry import ARCHITECTURES, build_model, options_of
from mtl_jax.sharing.structure import (SHARED, check_params_fit, load_params, load_trainable,
                                       param_owners, save_params, save_trainable,
                                       shared_params, trainable_params)
from mtl_jax.sharing.task_embedding import TaskEmbeddingModel

"""What each param belongs to (shared or one task), and saving the trained part alone.

Every architecture keeps one layout: a top-level params entry named in
`model.task_keys` is a `{task: ...}` sub-tree (one copy per task); every
other top-level entry (`encoder`, and e.g. `cross_stitch`) is shared.
`model.frozen_keys` names entries the optimizer does not change (the encoder
of adapters with `freeze_encoder`); what is left is saved on its own with
`save_trainable` and put back onto the same encoder with `load_trainable`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
import safetensors.numpy
from flax import traverse_util

SHARED = "shared"
_SEP = "/"


def param_owners(model, params: Any) -> Any:
  """`params` with every leaf replaced by its owner: a task name or "shared"."""
  owners = {}
  for key, value in params.items():
    if key in model.task_keys:
      owners[key] = {name: jax.tree.map(lambda _, n=name: n, sub)
                     for name, sub in value.items()}
    else:
      owners[key] = jax.tree.map(lambda _: SHARED, value)
  return owners


def shared_params(model, params: Any) -> dict[str, Any]:
  """The params every task uses (what gradient balancing balances)."""
  return {k: v for k, v in params.items() if k not in model.task_keys}


def trainable_params(model, params: Any) -> dict[str, Any]:
  """The params the optimizer changes (all but `model.frozen_keys`)."""
  return {k: v for k, v in params.items() if k not in model.frozen_keys}


def save_trainable(path: str, model, params: Any) -> None:
  """Writes the trained (not frozen) params alone to a safetensors file.

  For adapters over a frozen encoder: the adapters and heads, without the
  encoder. Leaves are named by their path ("adapters/ner/layer_0/...").

  Args:
    path: the file to write (written under a temporary name, then renamed).
    model: the run's model (its `frozen_keys`).
    params: the model's params (device arrays are fetched).
  """
  flat = traverse_util.flatten_dict(trainable_params(model, params))
  tensors = {}
  for keys, value in flat.items():
    bad = [k for k in keys if _SEP in str(k)]
    if bad:
      raise ValueError(f"cannot save param {keys}: the name {bad[0]!r} contains {_SEP!r}")
    tensors[_SEP.join(map(str, keys))] = np.ascontiguousarray(jax.device_get(value))
  metadata = {"frozen_keys": json.dumps(list(model.frozen_keys)),
              "task_names": json.dumps(list(model.task_names))}
  tmp = path + ".tmp"
  safetensors.numpy.save_file(tensors, tmp, metadata=metadata)
  os.replace(tmp, path)


def load_trainable(path: str, model) -> dict[str, Any]:
  """Reads a `save_trainable` file, checked against `model`'s params.

  Put it back onto the encoder it was trained with:
  `model.with_encoder(load_trainable(path, model), encoder_params)`.

  Raises:
    FileNotFoundError: no such file.
    ValueError: a tensor is missing, unexpected or mis-shaped (named).
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: no such file")
  tensors = safetensors.numpy.load_file(path)
  abstract = jax.eval_shape(model.init, jax.random.key(0))
  expected = {_SEP.join(keys): leaf for keys, leaf in
              traverse_util.flatten_dict(trainable_params(model, abstract)).items()}
  missing = sorted(set(expected) - set(tensors))
  unexpected = sorted(set(tensors) - set(expected))
  if missing or unexpected:
    raise ValueError(f"{path}: does not fit this model: missing {missing[:5]}, "
                     f"unexpected {unexpected[:5]}")
  for name, leaf in expected.items():
    if tensors[name].shape != leaf.shape:
      raise ValueError(f"{path}: tensor {name!r} has shape {tensors[name].shape}, "
                       f"the model needs {leaf.shape}")
  return traverse_util.unflatten_dict({tuple(name.split(_SEP)): value
                                       for name, value in tensors.items()})

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


def save_params(path: str, params: Any, metadata: dict[str, str] | None = None) -> None:
  """Writes a params pytree to a safetensors file, leaves named by their path.

  Names are the '/'-joined keys ("adapters/ner/layer_0/..."); the file is
  written under a temporary name, then renamed.

  Raises:
    ValueError: a key contains '/'.
  """
  tensors = {}
  for keys, value in traverse_util.flatten_dict(params).items():
    bad = [k for k in keys if _SEP in str(k)]
    if bad:
      raise ValueError(f"cannot save param {keys}: the name {bad[0]!r} contains {_SEP!r}")
    tensors[_SEP.join(map(str, keys))] = np.ascontiguousarray(jax.device_get(value))
  tmp = path + ".tmp"
  safetensors.numpy.save_file(tensors, tmp, metadata=metadata)
  os.replace(tmp, path)


def load_params(path: str, expected: Any | None = None) -> dict[str, Any]:
  """Reads a `save_params` file, checked against `expected` (shapes) where given.

  Raises:
    FileNotFoundError: no such file.
    ValueError: a tensor is missing, unexpected or mis-shaped (named).
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: no such file")
  params = traverse_util.unflatten_dict(
      {tuple(name.split(_SEP)): value
       for name, value in safetensors.numpy.load_file(path).items()})
  if expected is not None:
    check_params_fit(params, expected, path)
  return params


def check_params_fit(params: Any, expected: Any, where: str) -> None:
  """Raises unless `params` has exactly `expected`'s leaves and shapes.

  Raises:
    ValueError: tensors missing, unexpected or mis-shaped (named, with `where`).
  """
  got = traverse_util.flatten_dict(params, sep=_SEP)
  want = traverse_util.flatten_dict(expected, sep=_SEP)
  missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
  if missing or unexpected:
    raise ValueError(f"{where}: does not fit this model: missing {missing[:5]}, "
                     f"unexpected {unexpected[:5]}")
  for name, leaf in want.items():
    if tuple(np.shape(got[name])) != tuple(np.shape(leaf)):
      raise ValueError(f"{where}: tensor {name!r} has shape {np.shape(got[name])}, "
                       f"the model needs {tuple(np.shape(leaf))}")


def save_trainable(path: str, model, params: Any) -> None:
  """Writes the trained (not frozen) params alone to a safetensors file.

  For adapters over a frozen encoder: the adapters and heads, without the
  encoder. Leaves are named by their path ("adapters/ner/layer_0/...").

  Args:
    path: the file to write (written under a temporary name, then renamed).
    model: the run's model (its `frozen_keys`).
    params: the model's params (device arrays are fetched).
  """
  save_params(path, trainable_params(model, params),
              {"frozen_keys": json.dumps(list(model.frozen_keys)),
               "task_names": json.dumps(list(model.task_names))})


def load_trainable(path: str, model) -> dict[str, Any]:
  """Reads a `save_trainable` file, checked against `model`'s params.

  Put it back onto the encoder it was trained with:
  `model.with_encoder(load_trainable(path, model), encoder_params)`.

  Raises:
    FileNotFoundError: no such file.
    ValueError: a tensor is missing, unexpected or mis-shaped (named).
  """
  abstract = jax.eval_shape(model.init, jax.random.key(0))
  return load_params(path, trainable_params(model, abstract))

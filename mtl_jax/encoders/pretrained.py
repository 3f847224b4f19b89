"""Hugging Face checkpoints (config.json + model.safetensors) in and out.

`load_pretrained` maps a BERT-family checkpoint's tensor names onto the
encoder's params pytree, transposing PyTorch's (out, in) linear weights,
splitting attention projections into (heads, head_dim) and stacking query,
key and value into the fused `qkv` projection. `export_pretrained`
writes the inverse, so a trained encoder opens in `transformers`,
sentence-transformers or any tool that reads the HF layout. The tokenizer
files of such a folder are the data layer's (`mtl_jax.tasks.tokenization`
loads and saves them): the caller writes them beside the weights.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Iterator

import numpy as np
import safetensors.numpy

from mtl_jax.encoders.config import EncoderConfig

# HF prefixes of the encoder inside task models (BertForSequenceClassification
# saves "bert.encoder..."); a bare BertModel has none.
_PREFIXES = ("bert.", "roberta.", "model.")
# Tensors a checkpoint may carry that the encoder does not use.
_IGNORED = ("embeddings.position_ids", "embeddings.token_type_ids", "pooler.")


class CheckpointError(ValueError):
  """A checkpoint does not fit the encoder: missing or mis-shaped tensors."""


# Where a tensor sits inside ours: None for all of it, else a numpy index
# (query, key and value are slices of the fused `qkv` kernel and bias).
Part = tuple | None


def _mapping(config: EncoderConfig) -> Iterator[tuple[str, tuple[str, ...], Part,
                                                      Callable, Callable]]:
  """Yields (hf_name, our_path, part, hf_to_ours, ours_to_hf) for every tensor."""
  d, h, k = config.hidden_size, config.num_heads, config.head_dim
  same = lambda x: x

  def norm(hf, ours):
    # Old TF-converted checkpoints name LayerNorm params gamma/beta; the
    # reader accepts either (see `_read`).
    yield f"{hf}.weight", ours + ("scale",), None, same, same
    yield f"{hf}.bias", ours + ("bias",), None, same, same

  emb = ("embeddings",)
  yield "embeddings.word_embeddings.weight", emb + ("word", "embedding"), None, same, same
  yield ("embeddings.position_embeddings.weight", emb + ("position", "embedding"), None,
         same, same)
  yield ("embeddings.token_type_embeddings.weight",
         emb + ("token_type", "embedding"), None, same, same)
  yield from norm("embeddings.LayerNorm", emb + ("layer_norm",))
  for i in range(config.num_layers):
    hf = f"encoder.layer.{i}"
    ours = (f"layer_{i}",)
    for slot, proj in enumerate(("query", "key", "value")):
      # Fused kernel [d, 3, h, k] and bias [3, h, k]: `slot` is `proj`'s slice.
      yield (f"{hf}.attention.self.{proj}.weight",
             ours + ("attention", "qkv", "kernel"), (slice(None), slot),
             lambda w: w.T.reshape(d, h, k), lambda w: w.reshape(d, d).T)
      yield (f"{hf}.attention.self.{proj}.bias", ours + ("attention", "qkv", "bias"),
             (slot,),
             lambda b: b.reshape(h, k), lambda b: b.reshape(d))
    yield (f"{hf}.attention.output.dense.weight",
           ours + ("attention", "output", "kernel"), None,
           lambda w: w.T.reshape(h, k, d), lambda w: w.reshape(d, d).T)
    yield (f"{hf}.attention.output.dense.bias", ours + ("attention", "output", "bias"),
           None, same, same)
    yield from norm(f"{hf}.attention.output.LayerNorm", ours + ("attention_norm",))
    yield (f"{hf}.intermediate.dense.weight", ours + ("intermediate", "kernel"), None,
           lambda w: w.T, lambda w: w.T)
    yield f"{hf}.intermediate.dense.bias", ours + ("intermediate", "bias"), None, same, same
    yield (f"{hf}.output.dense.weight", ours + ("output", "kernel"), None,
           lambda w: w.T, lambda w: w.T)
    yield f"{hf}.output.dense.bias", ours + ("output", "bias"), None, same, same
    yield from norm(f"{hf}.output.LayerNorm", ours + ("output_norm",))


def _strip_prefix(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  out = {}
  for name, value in tensors.items():
    for prefix in _PREFIXES:
      if name.startswith(prefix):
        name = name[len(prefix):]
        break
    out[name] = value
  return out


def _expected_shapes(config: EncoderConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Shapes of the encoder's params, from an abstract (no-FLOP) init."""
  import jax
  import flax.linen as nn
  from mtl_jax.encoders.bert import Encoder

  ids = jax.ShapeDtypeStruct((1, 1), np.int32)
  abstract = jax.eval_shape(Encoder(config).init, jax.random.key(0), ids, ids, ids)
  flat = nn.unbox(abstract)["params"]
  return {path: leaf.shape for path, leaf in _flatten(flat)}


def _flatten(tree: dict, prefix=()) -> Iterator[tuple[tuple[str, ...], Any]]:
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _flatten(value, prefix + (key,))
    else:
      yield prefix + (key,), value


def _set(tree: dict, path: tuple[str, ...], value) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _get(tree: dict, path: tuple[str, ...]):
  for key in path:
    tree = tree[key]
  return tree


def load_pretrained(path: str | os.PathLike, **config_overrides
                    ) -> tuple[EncoderConfig, dict]:
  """Loads a Hugging Face BERT-family checkpoint directory.

  Args:
    path: a directory with `config.json` and `model.safetensors`.
    **config_overrides: `EncoderConfig` fields to change (dropout, dtype).

  Returns:
    (config, params): params is the encoder's plain params pytree (numpy,
    float32), as `Encoder(config).init(...)["params"]` would be.

  Raises:
    FileNotFoundError: a file of the checkpoint is missing.
    CheckpointError: a tensor is missing or has the wrong shape (both named).
  """
  config = EncoderConfig.from_pretrained_dir(path, **config_overrides)
  file = os.path.join(path, "model.safetensors")
  if not os.path.exists(file):
    raise FileNotFoundError(
        f"{file}: no model.safetensors in the checkpoint directory (PyTorch "
        "pytorch_model.bin files are not read; convert them to safetensors)")
  tensors = _strip_prefix(safetensors.numpy.load_file(file))
  expected = _expected_shapes(config)
  params: dict = {}
  used = set()
  for hf_name, our_path, part, to_ours, _ in _mapping(config):
    name = hf_name
    if name not in tensors and name.endswith((".weight", ".bias")) and "LayerNorm" in name:
      legacy = name.replace(".weight", ".gamma").replace(".bias", ".beta")
      name = legacy if legacy in tensors else name
    if name not in tensors:
      raise CheckpointError(f"{file}: missing tensor {hf_name!r} (for "
                            f"{'/'.join(our_path)})")
    value = to_ours(np.asarray(tensors[name], dtype=np.float32))
    want = expected[our_path]
    if part is not None:
      want = np.empty(want, np.bool_)[part].shape
    if value.shape != want:
      raise CheckpointError(
          f"{file}: tensor {name!r} has shape {tuple(tensors[name].shape)}, "
          f"which maps to {value.shape} but {'/'.join(our_path)} needs {want}")
    if part is None:
      _set(params, our_path, value)
    else:
      try:
        whole = _get(params, our_path)
      except KeyError:
        whole = np.zeros(expected[our_path], np.float32)
        _set(params, our_path, whole)
      whole[part] = value
    used.add(name)
  unused = [n for n in tensors if n not in used and not n.startswith(_IGNORED)]
  if len(unused) > 0:
    import logging
    logging.getLogger(__name__).info("%s: %d tensors not used by the encoder: %s",
                                     file, len(unused), ", ".join(unused[:5]))
  return config, params


def export_pretrained(path: str | os.PathLike, config: EncoderConfig, params: dict) -> None:
  """Writes the encoder in the Hugging Face layout (BertModel names).

  Args:
    path: the directory to write (created if needed).
    config: the encoder's architecture.
    params: the encoder's params pytree (arrays; device arrays are fetched).

  A loadable checkpoint also needs its tokenizer: save it into the same
  folder with `mtl_jax.tasks.tokenization.save_tokenizer(tokenizer, path)`.
  """
  os.makedirs(path, exist_ok=True)
  tensors = {}
  for hf_name, our_path, part, _, to_hf in _mapping(config):
    value = np.asarray(_get(params, our_path), dtype=np.float32)
    tensors[hf_name] = np.ascontiguousarray(to_hf(value if part is None else value[part]))
  # Written to a temporary name first so an interrupted export never leaves a
  # truncated model.safetensors that looks complete.
  tmp = os.path.join(path, "model.safetensors.tmp")
  safetensors.numpy.save_file(tensors, tmp, metadata={"format": "pt"})
  os.replace(tmp, os.path.join(path, "model.safetensors"))
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config.to_hf(), f, indent=2)

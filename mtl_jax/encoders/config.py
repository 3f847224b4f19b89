"""The encoder's architecture as a frozen dataclass, readable from a Hugging Face config."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping


# Implementations of the attention core (`attention.py`).
ATTENTION_IMPLS = ("auto", "xla", "cpu_kernel")
MATMUL_IMPLS = ("auto", "xla", "blas")
NORM_IMPLS = ("auto", "xla", "cpu_kernel")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Architecture of a BERT-family Transformer encoder.

  Field names follow ours; `from_hf` / `to_hf` translate Hugging Face's
  `config.json` (BertConfig) names.
  """

  vocab_size: int = 30522
  hidden_size: int = 384
  num_layers: int = 6
  num_heads: int = 12
  intermediate_size: int = 1536
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  hidden_dropout: float = 0.1
  attention_dropout: float = 0.1
  layer_norm_eps: float = 1e-12
  initializer_range: float = 0.02
  pad_token_id: int = 0
  # First position id (RoBERTa-style checkpoints count from pad_token_id + 1).
  position_offset: int = 0
  # Compute dtype of activations ("float32" or "bfloat16"); params stay float32.
  dtype: str = "float32"
  # Dropout masks: "hash" (a keyed integer hash per element, one cheap pass;
  # see `dropout.py`) or "threefry" (flax's nn.Dropout, ~50x costlier on CPU).
  dropout_rng: str = "hash"
  # The attention core: "xla" (jax.numpy, any backend), "cpu_kernel" (a fused
  # C++ custom call, float32 on CPU; see `attention.py`) or "auto" (the kernel
  # where it applies: float32, one CPU device, a working C++ compiler).
  attention_impl: str = "auto"
  # The dense products: "xla" (lax.dot_general), "blas" (a BLAS sgemm as a
  # C++ custom call, float32 on CPU; see `dense.py`) or "auto" (the BLAS call
  # where it applies and pays: float32, one CPU device, MKL installed).
  matmul_impl: str = "auto"
  # Layer normalisation: "xla" (jax.numpy), "cpu_kernel" (a C++ custom call,
  # float32 on CPU; see `layer_norm.py`) or "auto" (the kernel where it
  # applies, as for attention_impl).
  norm_impl: str = "auto"

  def __post_init__(self):
    if self.hidden_size % self.num_heads:
      raise ValueError(
          f"hidden_size {self.hidden_size} is not divisible by num_heads "
          f"{self.num_heads}")
    if self.dtype not in ("float32", "bfloat16"):
      raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
    if self.dropout_rng not in ("hash", "threefry"):
      raise ValueError(f"dropout_rng must be 'hash' or 'threefry', got {self.dropout_rng!r}")
    if self.attention_impl not in ATTENTION_IMPLS:
      raise ValueError(f"attention_impl must be one of {ATTENTION_IMPLS}, got "
                       f"{self.attention_impl!r}")
    if self.matmul_impl not in MATMUL_IMPLS:
      raise ValueError(f"matmul_impl must be one of {MATMUL_IMPLS}, got {self.matmul_impl!r}")
    if self.norm_impl not in NORM_IMPLS:
      raise ValueError(f"norm_impl must be one of {NORM_IMPLS}, got {self.norm_impl!r}")
    if self.norm_impl == "cpu_kernel" and self.dtype != "float32":
      raise ValueError(f"norm_impl='cpu_kernel' computes float32; got dtype={self.dtype!r}")
    if self.matmul_impl == "blas" and self.dtype != "float32":
      raise ValueError(f"matmul_impl='blas' computes float32; got dtype={self.dtype!r}")
    if self.attention_impl == "cpu_kernel" and (self.dtype != "float32"
                                                or self.dropout_rng != "hash"):
      raise ValueError("attention_impl='cpu_kernel' computes float32 with hash dropout; "
                       f"got dtype={self.dtype!r}, dropout_rng={self.dropout_rng!r}")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  def replace(self, **changes) -> "EncoderConfig":
    return dataclasses.replace(self, **changes)

  # The HF names of our fields (BertConfig).
  _HF_NAMES = {
      "vocab_size": "vocab_size",
      "hidden_size": "hidden_size",
      "num_layers": "num_hidden_layers",
      "num_heads": "num_attention_heads",
      "intermediate_size": "intermediate_size",
      "max_position_embeddings": "max_position_embeddings",
      "type_vocab_size": "type_vocab_size",
      "hidden_dropout": "hidden_dropout_prob",
      "attention_dropout": "attention_probs_dropout_prob",
      "layer_norm_eps": "layer_norm_eps",
      "initializer_range": "initializer_range",
      "pad_token_id": "pad_token_id",
  }

  @classmethod
  def from_hf(cls, hf: Mapping[str, Any], **overrides) -> "EncoderConfig":
    """Builds a config from a Hugging Face BERT-family `config.json` dict.

    Args:
      hf: the parsed `config.json`.
      **overrides: fields of ours that replace what the file says (e.g. dropout).

    Returns:
      The encoder config.

    Raises:
      ValueError: the checkpoint is not an architecture this encoder implements.
    """
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
      raise ValueError(f"hidden_act {act!r} is not supported (only exact 'gelu')")
    pos = hf.get("position_embedding_type", "absolute")
    if pos != "absolute":
      raise ValueError(f"position_embedding_type {pos!r} is not supported")
    kwargs = {ours: hf[theirs] for ours, theirs in cls._HF_NAMES.items()
              if theirs in hf and hf[theirs] is not None}
    if hf.get("model_type") in ("roberta", "xlm-roberta", "camembert"):
      kwargs["position_offset"] = hf.get("pad_token_id", 1) + 1
    kwargs.update(overrides)
    return cls(**kwargs)

  def to_hf(self) -> dict[str, Any]:
    """Returns the Hugging Face `config.json` dict of this architecture."""
    hf = {theirs: getattr(self, ours) for ours, theirs in self._HF_NAMES.items()}
    hf.update(architectures=["BertModel"], model_type="bert", hidden_act="gelu",
              position_embedding_type="absolute")
    return hf

  @classmethod
  def from_pretrained_dir(cls, path: str | os.PathLike, **overrides) -> "EncoderConfig":
    """Reads `config.json` of a Hugging Face checkpoint directory."""
    file = os.path.join(path, "config.json")
    if not os.path.exists(file):
      raise FileNotFoundError(f"{file}: no config.json in the checkpoint directory")
    with open(file) as f:
      return cls.from_hf(json.load(f), **overrides)

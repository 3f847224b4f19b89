"""Run configuration: `ml_collections.ConfigDict` files with `get_config(arg)`.

An experiment is one Python file whose `get_config(arg=None)` returns the
whole run, starting from `default_config()` (as big_vision's configs do).
The defaults are locked, so a mistyped key fails with the closest known
key; `--set key=value` overrides from the command line are checked the same
way.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import os
import warnings
from typing import Any, Sequence

import ml_collections

from mtl_jax.sharding.rules import DEFAULT_RULES


def default_config() -> ml_collections.ConfigDict:
  """Every key a run reads, with its default. `tasks` is free-form (name -> spec)."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # the run's seed: initialisation, dropout, data order, sampled schedules
  # Task name -> spec: a registered task's options ({} or {'data_dir': ...}), or
  # a custom task {'kind': ..., 'source': {...}, 'labels': ..., 'max_length': ...}.
  config.tasks = ml_collections.ConfigDict()
  # A registered mixture (tasks + sampling rates) whose tasks join config.tasks:
  # 'glue_small' or "glue_small(data_dir='/data/glue')"; '' for none.
  config.mixture = ""

  config.encoder = dict(
      # A Hugging Face checkpoint directory (config.json + model.safetensors);
      # when set, the architecture below is read from it instead.
      pretrained="",
      hidden_size=256,  # from-scratch encoder: width
      num_layers=4,  # Transformer layers
      num_heads=4,  # attention heads (divide hidden_size)
      intermediate_size=1024,  # feed-forward width
      max_position_embeddings=512,  # longest input (>= the largest bucket)
      type_vocab_size=2,  # token types (2: sentence pairs)
      hidden_dropout=0.1,  # dropout after embeddings and sub-layers (pretrained: its own)
      attention_dropout=0.1,  # dropout of attention probabilities (pretrained: its own)
      dtype="float32",  # activations: float32 or bfloat16 (params stay float32)
      # The attention core: 'auto' (the fused CPU kernel for float32 on one
      # CPU device, else XLA's ops), 'xla' or 'cpu_kernel' (EncoderConfig).
      attention_impl="auto",
      # The dense products: 'auto' (MKL's sgemm as a CPU custom call for
      # float32 on one CPU device when MKL is installed: pip install
      # "mtl-jax[mkl]"; else XLA's), 'xla' or 'blas' (EncoderConfig).
      matmul_impl="auto",
      # Layer normalisation: 'auto' (a C++ CPU kernel for float32 on one CPU
      # device, else XLA's ops), 'xla' or 'cpu_kernel' (EncoderConfig).
      norm_impl="auto",
      # Dropout masks: 'hash' (a keyed integer hash per element, one cheap
      # pass) or 'threefry' (flax's nn.Dropout; ~50x costlier on CPU).
      dropout_rng="hash",
  )
  config.tokenizer = dict(
      # tokenizer.json / vocab.txt (file or folder); '' uses the pretrained
      # checkpoint's, or trains a WordPiece on the train texts.
      path="",
      vocab_size=8000,  # a WordPiece trained on the train texts: its size
      lowercase=True,  # ...and whether it lowercases
  )
  # How the tasks share the encoder (mtl_jax.sharing): `kind` picks the
  # architecture; the sub-dict named after it holds its options.
  config.sharing = dict(
      # hard | layerwise | adapters | mtl_attention | cross_stitch | task_embedding
      # | mmoe | cgc | ple
      kind="hard",
      # Lower layers shared, a copy of the rest per task (negative: from the top).
      layerwise=dict(shared_layers=-1),
      # Bottleneck adapters per task in every layer; houlsby | pfeiffer placement.
      adapters=dict(size=64, placement="houlsby", freeze_encoder=True),
      # Per-task upper layers; each task attends over all tasks' outputs.
      mtl_attention=dict(shared_layers=-1, attention_size=128),
      # Per-task upper layers mixed by cross-stitch units (0: only embeddings shared).
      cross_stitch=dict(shared_layers=0, self_weight=0.9),
      # Shared experts (copies of the layers above the trunk), a gate per task.
      mmoe=dict(shared_layers=-1, num_experts=3),
      # Shared and per-task experts above the trunk, a gate per task.
      cgc=dict(shared_layers=-1, shared_experts=1, task_experts=1),
      # CGC in `levels` levels, the layers above the trunk split among them.
      ple=dict(shared_layers=-2, levels=2, shared_experts=1, task_experts=1),
  )
  # Deprecated: config.balancing.method (a config that sets it still runs, with
  # a warning; '' = not set).
  config.weighting = ""
  config.balancing = dict(
      # The balancing method and its arguments, e.g. 'equal', 'static(weights=[1,
      # 0.5])', 'gradnorm(alpha=1.5)', 'cagrad(c=0.4)' (mtl_jax.weighting.names()).
      method="equal",
      # Where per-task gradients are taken: auto (the method's paper) |
      # representation | last_layer | full (see mtl_jax/training/gradients.py).
      gradient_mode="auto",
      # Log per-task gradient norms and their pairwise cosines (conflicts).
      diagnostics=False,
      # The last shared layer for gradient_mode=last_layer, a '/' path in the
      # encoder params ('' = the last layer_<i>).
      last_layer="",
  )
  # Which tasks each step trains (mtl_jax.training.schedules), e.g. 'joint',
  # 'alternating', 'temperature(temperature=2)',
  # "progressive(main_task='ner', start_steps={'news': 500})".
  config.schedule = "joint"
  config.relatedness = dict(
      weight=0.0,  # L_R = weight * sum_ij R_ij ||f_i - f_j||^2 in the objective; 0: off
      prior=(),  # R, k x k in task order; () learns R (mtl_jax.relatedness.regularizer)
      temperature=1.0,  # learned R: softmax temperature over relative distances
      measure_every=0,  # steps between gradient-cosine / lookahead-affinity measurements
      # The affinity's lookahead SGD step size. Not the run's learning rate: an
      # SGD step at an Adam learning rate barely moves the loss (float32 noise).
      lookahead_lr=0.1,
  )
  config.optimizer = dict(
      learning_rate=5e-5,  # AdamW peak learning rate
      warmup_steps=0,  # linear warm-up from 0
      schedule="linear",  # linear | cosine | constant (after warm-up)
      weight_decay=0.01,  # AdamW decay (not on biases and LayerNorm scales)
      clip_norm=1.0,  # global gradient-norm clip; 0: none
      b1=0.9,  # Adam first-moment decay
      b2=0.999,  # Adam second-moment decay
      eps=1e-8,  # Adam epsilon
      # Gradient accumulation: the optimizer steps once every n train steps, on
      # the mean of their gradients (optax.MultiSteps); train.steps counts
      # micro-batches and must be a multiple of n.
      accumulate_steps=1,
  )
  config.train = dict(
      steps=1000,  # train steps
      batch_size=32,  # per task and step
      buckets=(32, 64, 128),  # padded lengths; the largest bounds max_length
      # Token compaction: k > 0 runs the encoder on each step's (and evaluation
      # batch's) real tokens only (all but the attention core), in a buffer
      # rounded up to a multiple of 1/k of the slots: at most k programs per length
      # (one device; hard, layerwise, mtl_attention, cross_stitch sharing).
      # 0: every padded slot.
      token_buckets=0,
      log_every=10,  # steps between train-log records
      eval_every=0,  # 0: evaluate at the end only
      # Early stopping: this many evaluations in a row without a better
      # checkpoint.best_metric end the run; with patience, stopped or not, a run
      # is scored at its best checkpoint (0: off).
      patience=0,
      # The split evaluations score: 'eval', or 'heldout' (a source's `holdout`
      # slice of train) to choose settings without touching the reported split.
      eval_split="eval",
      checkpoint_every=0,  # 0: checkpoint at the end only
      eval_batch_size=64,  # examples per evaluation batch
      # A non-finite loss or gradient skips the step's update; this many in a
      # row stop the run (the last checkpoint holds the last good state).
      max_nonfinite_in_a_row=10,
      # Also write TensorBoard event files to WORKDIR/tensorboard (host 0).
      tensorboard=True,
  )
  config.checkpoint = dict(
      keep=2,  # the latest checkpoints kept
      # Also keep the best checkpoint by this eval metric, 'task/metric' (e.g.
      # 'demo_ag_news/accuracy') or 'main_score' (the mean of the tasks' main
      # metrics); '' = latest only. Needs train.eval_every: a checkpoint is
      # saved at every evaluation.
      best_metric="",
      best_mode="max",  # max | min
  )
  # The device mesh (axes data, fsdp, model; -1 = the rest of the devices) and
  # the logical-axis rules that map parameter and batch dimensions onto it
  # (see mtl_jax/sharding/rules.py). The default is data parallel.
  config.mesh = dict(
      shape=dict(data=-1, fsdp=1, model=1),  # devices per mesh axis (-1: the rest)
      rules=DEFAULT_RULES,  # (logical axis, mesh axes) pairs
  )
  # Several hosts (jax.distributed.initialize); see mtl_jax/sharding/distributed.py.
  config.distributed = dict(
      enabled=False,  # True on a TPU pod slice / SLURM / Open MPI (auto-detected)
      coordinator_address="",  # 'host:port' of process 0 (or $JAX_COORDINATOR_ADDRESS)
      num_processes=0,  # or $JAX_NUM_PROCESSES
      process_id=-1,  # or $JAX_PROCESS_ID
  )
  config.lock()
  return config


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/config.py` or `path/to/config.py:arg` (passed to get_config)."""
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: config file not found")
  module_spec = importlib.util.spec_from_file_location("mtl_jax_user_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise AttributeError(f"{path}: a config file must define get_config(arg=None)")
  config = module.get_config(arg) if arg else module.get_config()
  return resolve(config)


def resolve(config: ml_collections.ConfigDict | dict) -> ml_collections.ConfigDict:
  """Merges a (possibly partial) config onto the defaults; unknown keys fail.

  Raises:
    ValueError: a key the defaults do not have (with the closest known key).
  """
  merged = default_config()
  given = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
  _merge(merged, given, prefix="")
  return migrate(merged)


def migrate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Moves deprecated keys to their new place (in place), with a warning.

  `config.weighting` (the balancing method) is now `config.balancing.method`.

  Raises:
    ValueError: both the old and the new key are set, to different methods.
  """
  old = config.get("weighting", "")
  if not old:
    return config
  new = config.balancing.method
  if new not in ("equal", old):
    raise ValueError(f"config.weighting={old!r} (deprecated) and "
                     f"config.balancing.method={new!r} disagree: set only "
                     "config.balancing.method")
  warnings.warn(f"config.weighting is deprecated: write config.balancing.method = {old!r}",
                DeprecationWarning, stacklevel=3)
  config.balancing.method = old
  config.weighting = ""
  return config


def _merge(target: ml_collections.ConfigDict, given: dict, prefix: str) -> None:
  for key, value in given.items():
    name = prefix + key
    if key not in target:
      close = difflib.get_close_matches(key, list(target.keys()), n=1)
      hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
      raise ValueError(f"unknown config key {name!r}{hint}")
    if name == "tasks":
      with target.unlocked():
        target[key] = ml_collections.ConfigDict(value)
    elif isinstance(target[key], ml_collections.ConfigDict) and isinstance(value, dict):
      _merge(target[key], value, prefix=name + ".")
    else:
      _set(target, key, value, name)


def _set(target: ml_collections.ConfigDict, key: str, value: Any, name: str) -> None:
  current = target[key]
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if isinstance(current, tuple) and isinstance(value, list):
    value = tuple(value)
  try:
    target[key] = value
  except TypeError:
    raise ValueError(f"config key {name!r} takes a {type(current).__name__}, "
                     f"got {value!r}") from None


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]
                    ) -> ml_collections.ConfigDict:
  """Applies 'a.b=value' strings (values parsed as Python literals, else text)."""
  for override in overrides:
    key, sep, text = override.partition("=")
    if not sep:
      raise ValueError(f"override {override!r} must look like key=value")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    *parents, leaf = key.strip().split(".")
    node = config
    for i, part in enumerate(parents):
      if part not in node and i > 0 and parents[0] == "tasks":
        # Options for a task of config.mixture not (yet) in config.tasks.
        with node.unlocked():
          node[part] = ml_collections.ConfigDict()
      elif part not in node:
        raise ValueError(f"unknown config key {'.'.join(parents[:i + 1])!r}")
      node = node[part]
    if leaf not in node and ".".join(parents[:1]) != "tasks":
      close = difflib.get_close_matches(leaf, list(node.keys()), n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      raise ValueError(f"unknown config key {key!r}{hint}")
    if leaf in node and not isinstance(node, ml_collections.ConfigDict):
      node[leaf] = value
    elif leaf in node:
      _set(node, leaf, value, key)
    else:
      with node.unlocked():
        node[leaf] = value
  return migrate(config)

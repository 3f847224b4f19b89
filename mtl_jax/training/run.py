"""A run's fixed parts, built from a config or read back from a workdir.

`prepare(config)` reads the train splits, settles each task's label
vocabulary, the tokenizer (the checkpoint's, or a WordPiece trained on the
train texts) and the encoder architecture, and builds the model.
`save(run, workdir)` writes those choices next to the checkpoints, so that
`load(workdir)` rebuilds the same model for `eval` and `predict` without the
training data. `make_trainer(run, layout)` builds everything of the run's
step in one place: optimizer, balancing method, state initialiser and the
train step (`Trainer`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax
import tokenizers

from mtl_jax import config as config_lib
from mtl_jax import encoders
from mtl_jax import relatedness
from mtl_jax import sharding
from mtl_jax import weighting as weighting_lib
from mtl_jax.encoders.config import EncoderConfig
from mtl_jax.encoders.pretrained import load_pretrained
from mtl_jax.sharing import ARCHITECTURES, HardSharingModel, TaskHead, build_model
from mtl_jax.tasks import RawSplit, Task, task_from_config
from mtl_jax.tasks import mixture as mixture_lib
from mtl_jax.tasks import tokenization
from mtl_jax.training import checkpoint as checkpoint_lib
from mtl_jax.training.checkpoint import Checkpointer
from mtl_jax.training import sharded
from mtl_jax.training.gradients import split_params
from mtl_jax.training.optimizer import make_optimizer
from mtl_jax.training.state import TrainState
from mtl_jax.training.step import make_train_step, resolve_gradient_mode

log = logging.getLogger(__name__)

CONFIG_FILE = checkpoint_lib.CONFIG_FILE
TASKS_FILE = "tasks.json"
ENCODER_FILE = "encoder.json"
TOKENIZER_DIR = "tokenizer"
TOKENIZER_FILE = "tokenizer.json"
CHECKPOINT_DIR = "checkpoints"
# The trained params alone when part of the model is frozen (adapters + heads).
TRAINABLE_FILE = "trainable.safetensors"


@dataclasses.dataclass
class Run:
  """Everything fixed for a run: tasks, labels, tokenizer and model."""

  config: ml_collections.ConfigDict
  tasks: tuple[Task, ...]
  labels: dict[str, tuple[str, ...]]
  tokenizer: Any
  encoder_config: EncoderConfig
  model: HardSharingModel
  # Pretrained encoder params to start from (None: random init).
  pretrained_encoder: dict | None = None
  # Train splits read while preparing (reused, not read twice).
  train_raw: dict[str, RawSplit] = dataclasses.field(default_factory=dict)
  # The mixture's sampling rates per task (summing to 1); None without one.
  rates: dict[str, float] | None = None

  @property
  def task_names(self) -> tuple[str, ...]:
    return tuple(t.name for t in self.tasks)

  @property
  def kinds(self) -> dict[str, Any]:
    return {t.name: t.spec for t in self.tasks}

  def task(self, name: str) -> Task:
    for task in self.tasks:
      if task.name == name:
        return task
    raise KeyError(f"no task {name!r} in this run; its tasks: "
                   f"{', '.join(self.task_names)}")


class Trainer(NamedTuple):
  """The one owner of a run's step, built by `make_trainer(run, layout)`.

  Attributes:
    init: the pure state initialiser, `init(pretrained_encoder) -> TrainState`
      (random params, with a pretrained encoder's params where given); pure,
      so it runs under `jax.eval_shape` and `jax.jit` with output shardings.
    abstract_state: the step-0 state's `jax.ShapeDtypeStruct`s carrying their
      `NamedSharding`s (a target for the jitted init and for restores).
    optimizer: the optax optimizer (`config.optimizer`).
    weighting: the balancing method (`config.balancing.method`).
    learning_rate: the learning-rate schedule, a function of the step.
    regularizer: the task-relatedness penalty (`config.relatedness`), or None.
    train_step: the pure `train_step(state, batch, rng) -> (state, metrics)`.
    layout: the mesh and its rules.
  """

  init: Callable[..., TrainState]
  abstract_state: TrainState
  optimizer: optax.GradientTransformation
  weighting: Any
  learning_rate: optax.Schedule
  regularizer: Any
  train_step: Callable
  layout: sharding.Layout

  def create_state(self, run: "Run") -> TrainState:
    """The step-0 state, each device creating only its shards."""
    return sharded.create_state(self.init, self.abstract_state, self.layout,
                                run.pretrained_encoder,
                                encoders.logical_axes(run.model.encoder_config))

  def jit_loop_step(self, max_nonfinite_in_a_row: int = 0) -> Callable:
    """The step the loop runs (`sharded.jit_loop_step`): keyed by the step,
    guarded and counting skipped steps on device, donated, laid out."""
    return sharded.jit_loop_step(self.train_step, self.abstract_state, self.layout,
                                 max_nonfinite_in_a_row)


def make_trainer(run: Run, layout: sharding.Layout) -> Trainer:
  """Everything of the run's step, from its config: see `Trainer`."""
  config = run.config
  optimizer, learning_rate = make_optimizer(config.optimizer, config.train.steps,
                                            frozen=run.model.frozen_keys)
  balancing = config.balancing
  # Methods with per-parameter state (task_rms) are shaped after the shared params.
  shared_shapes = split_params(
      jax.eval_shape(run.model.init, jax.random.PRNGKey(0)))[0]
  weighting = weighting_lib.from_spec(balancing.method, num_tasks=len(run.tasks),
                                      task_names=run.task_names,
                                      shared_shapes=shared_shapes)
  regularizer = relatedness.make_regularizer(config.relatedness, run.task_names)

  def init(pretrained_encoder=None) -> TrainState:
    init_rng, dropout_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    params = run.model.init(init_rng)
    if pretrained_encoder is not None:
      params = run.model.with_encoder(
          params, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), pretrained_encoder))
    return TrainState.create(params, optimizer, weighting.init(len(run.tasks)),
                             dropout_rng)

  shapes = jax.eval_shape(init, run.pretrained_encoder)
  shardings = layout.state_shardings(shapes, run.model.logical_axes())
  abstract = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, shardings)
  train_step = make_train_step(run.model, weighting, optimizer,
                               gradient_mode=balancing.gradient_mode,
                               diagnostics=balancing.diagnostics,
                               last_layer=balancing.last_layer, regularizer=regularizer)
  return Trainer(init, abstract, optimizer, weighting, learning_rate, regularizer,
                 train_step, layout)


def restore_params(run: Run, workdir: str, step: int | str | None = None):
  """The params of a workdir's checkpoint: `step` = a number, 'best' or latest (None).

  The params are replicated over a data-parallel mesh of this machine's
  devices, whatever mesh trained them.
  """
  checkpointer = Checkpointer.from_config(os.path.join(workdir, CHECKPOINT_DIR),
                                          run.config.checkpoint)
  try:
    layout = sharding.Layout(sharding.make_mesh({"data": -1}))
    state, _ = checkpointer.restore(make_trainer(run, layout).abstract_state, step)
  finally:
    checkpointer.close()
  return state.params


def task_specs(config: ml_collections.ConfigDict) -> dict[str, dict]:
  """{task: its config entry} as the run resolves them (a mixture's tasks expanded)."""
  return mixture_lib.task_specs(config.mixture, {
      name: spec.to_dict() if hasattr(spec, "to_dict") else spec
      for name, spec in config.tasks.items()})


def build_tasks(config: ml_collections.ConfigDict) -> tuple[Task, ...]:
  specs = task_specs(config)
  if not specs:
    raise ValueError("the config has no tasks (config.tasks and config.mixture are empty)")
  # Tasks are ordered by name (ConfigDict's order): losses_k, weights_k and
  # list-valued per-task options follow it.
  tasks = tuple(task_from_config(name, spec) for name, spec in sorted(specs.items()))
  buckets = config.train.buckets
  if list(buckets) != sorted(buckets) or not buckets:
    raise ValueError(f"train.buckets must be increasing lengths, got {buckets}")
  tasks = tuple(t if t.max_length else dataclasses.replace(t, max_length=buckets[-1])
                for t in tasks)
  for task in tasks:
    if task.max_length > buckets[-1]:
      raise ValueError(f"task {task.name}: max_length {task.max_length} exceeds the "
                       f"largest bucket {buckets[-1]} (train.buckets)")
  return tasks


def model_for(config: ml_collections.ConfigDict, encoder_config: EncoderConfig, tasks,
              labels) -> HardSharingModel:
  """The run's model: `config.sharing` over the encoder, a head per task."""
  # Text-generating kinds (seq2seq) output tokens of the shared vocabulary.
  heads = [TaskHead(t.name, t.spec, t.spec.num_outputs(labels[t.name],
                                                       encoder_config.vocab_size),
                    dict(t.head)) for t in tasks]
  return build_model(config.sharing, encoder_config, heads)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks what a run can check without reading data, so a bad config writes nothing.

  Every task (kind, options, metrics, source), its files, the sharing kind
  and the balancing method.

  Raises:
    ValueError, FileNotFoundError: the first problem, named.
  """
  config_lib.migrate(config)
  tasks = build_tasks(config)
  for task in tasks:
    missing = task.source.missing_files()
    if missing:
      raise FileNotFoundError(f"task {task.name}: no such file for split {missing[0]}")
  architecture = ARCHITECTURES[config.sharing.kind]  # unknown: an error naming the closest
  weighting_lib.from_spec(config.balancing.method, num_tasks=len(tasks),
                          task_names=tuple(t.name for t in tasks))
  if config.train.token_buckets and not architecture.compacts_tokens:
    compacting = sorted(kind for kind in ARCHITECTURES.names()
                        if ARCHITECTURES[kind].compacts_tokens)
    raise ValueError(f"train.token_buckets: sharing {config.sharing.kind!r} runs its encoder "
                     f"over every padded slot; set it to 0 (it applies to {compacting})")


def encodes_each_task_apart(config: ml_collections.ConfigDict, model: HardSharingModel,
                            method) -> bool:
  """Whether the run's train step puts each task's rows through the encoder apart.

  So it does where the balancing method takes per-task gradients of the whole
  encoder ('full' or 'last_layer' mode) and the model's tasks are separable
  (`training/gradients.py`); then `train.token_buckets` gives every task's
  pass one capacity (`tasks.batching.with_token_slots(each_task=True)`).
  """
  balancing = config.balancing
  mode = resolve_gradient_mode(method, balancing.gradient_mode, balancing.diagnostics)
  return mode in ("full", "last_layer") and model.separable_tasks


def prepare(config: ml_collections.ConfigDict, tokenizer=None) -> Run:
  """Builds a run from its config: reads train splits, labels, tokenizer, model.

  Args:
    config: the resolved run config.
    tokenizer: a tokenizer to use instead of the config's (a resumed run
      keeps the one it trained).

  Raises:
    ValueError, FileNotFoundError, DataError: a bad config or data file,
      named in the message.
  """
  config_lib.migrate(config)  # a deprecated key set after `resolve`
  tasks = build_tasks(config)
  train_raw = {t.name: t.read("train") for t in tasks}
  labels = {t.name: t.label_vocab(train_raw[t.name]) for t in tasks}
  for task in tasks:
    if len(labels[task.name]) < task.spec.min_labels:
      raise ValueError(f"task {task.name}: only {len(labels[task.name])} label(s) in "
                       "the train split")
  enc = config.encoder
  pretrained = None
  if enc.pretrained:
    encoder_config, pretrained = load_pretrained(enc.pretrained, dtype=enc.dtype,
                                                 attention_impl=enc.attention_impl,
                                                 matmul_impl=enc.matmul_impl,
                                                 norm_impl=enc.norm_impl,
                                                 dropout_rng=enc.dropout_rng)
    if tokenizer is None:
      tokenizer = tokenization.load_tokenizer(config.tokenizer.path or enc.pretrained)
  else:
    if tokenizer is not None:
      pass
    elif config.tokenizer.path:
      tokenizer = tokenization.load_tokenizer(config.tokenizer.path)
    else:
      texts = (text for t in tasks for text in t.spec.texts(train_raw[t.name]))
      tokenizer = tokenization.train_wordpiece(
          texts, vocab_size=config.tokenizer.vocab_size,
          lowercase=config.tokenizer.lowercase)
    encoder_config = EncoderConfig(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=enc.hidden_size,
        num_layers=enc.num_layers, num_heads=enc.num_heads,
        intermediate_size=enc.intermediate_size,
        max_position_embeddings=enc.max_position_embeddings,
        type_vocab_size=enc.type_vocab_size, hidden_dropout=enc.hidden_dropout,
        attention_dropout=enc.attention_dropout, dtype=enc.dtype,
        attention_impl=enc.attention_impl, matmul_impl=enc.matmul_impl,
        norm_impl=enc.norm_impl, dropout_rng=enc.dropout_rng,
        pad_token_id=tokenizer.token_to_id("[PAD]") or 0)
  longest = max(config.train.buckets)
  if longest + encoder_config.position_offset > encoder_config.max_position_embeddings:
    raise ValueError(f"the largest bucket {longest} exceeds the encoder's "
                     f"max_position_embeddings {encoder_config.max_position_embeddings}")
  rates = mixture_lib.task_rates(config.mixture, [t.name for t in tasks],
                                 {n: len(raw.dataset) for n, raw in train_raw.items()})
  return Run(config, tasks, labels, tokenizer, encoder_config,
             model_for(config, encoder_config, tasks, labels), pretrained, train_raw, rates)


def run_files(run: Run) -> dict[str, Any]:
  """The run's files as JSON: what a workdir holds beside its checkpoints.

  {config.json, tasks.json, encoder.json, tokenizer.json}; every checkpoint
  keeps a copy (`Checkpointer.save(..., run_files=...)`), so a lost or
  half-written workdir file never makes the checkpoints useless (a
  vocabulary trained from scratch cannot be rebuilt).
  """
  return {
      CONFIG_FILE: run.config.to_dict(),
      TASKS_FILE: {t.name: {"kind": t.kind, "labels": list(run.labels[t.name]),
                            "rate": run.rates and run.rates[t.name]}
                   for t in run.tasks},
      ENCODER_FILE: dataclasses.asdict(run.encoder_config),
      TOKENIZER_FILE: json.loads(run.tokenizer.to_str()),
  }


def save(run: Run, workdir: str) -> None:
  """Writes the config, labels, encoder architecture and tokenizer to `workdir`.

  Each file is written under a temporary name and renamed, so an interrupted
  save leaves the previous file whole.
  """
  os.makedirs(workdir, exist_ok=True)
  files = run_files(run)
  for name in (CONFIG_FILE, TASKS_FILE, ENCODER_FILE):
    write_json(os.path.join(workdir, name), files[name])
  tokenization.save_tokenizer(run.tokenizer, os.path.join(workdir, TOKENIZER_DIR))


def read_run_files(workdir: str) -> tuple[dict[str, Any], Any]:
  """A workdir's run files and tokenizer; any it lost, from its latest checkpoint.

  Returns:
    ({config.json, tasks.json, encoder.json: their JSON}, the tokenizer).

  Raises:
    FileNotFoundError: not a training workdir, or files are missing and no
      checkpoint holds a copy (each named).
  """
  files, missing = {}, []
  for name in (CONFIG_FILE, TASKS_FILE, ENCODER_FILE):
    path = os.path.join(workdir, name)
    if os.path.exists(path):
      with open(path) as f:
        files[name] = json.load(f)
    else:
      missing.append(name)
  tokenizer_dir = os.path.join(workdir, TOKENIZER_DIR)
  tokenizer = (tokenization.load_tokenizer(tokenizer_dir)
               if tokenization.has_tokenizer(tokenizer_dir) else None)
  if tokenizer is None:
    missing.append(TOKENIZER_FILE)
  if not missing:
    return files, tokenizer
  shown = ", ".join(f"{TOKENIZER_DIR}/{n}" if n == TOKENIZER_FILE else n for n in missing)
  checkpoints = os.path.join(workdir, CHECKPOINT_DIR)
  step, copies = None, {}
  if os.path.isdir(checkpoints):
    checkpointer = Checkpointer(checkpoints)
    try:
      step = checkpointer.latest_step()
      copies = checkpointer.read_run_files(step) if step is not None else {}
    finally:
      checkpointer.close()
  if step is None and CONFIG_FILE in missing:
    raise FileNotFoundError(f"{workdir}: not a training workdir (no {CONFIG_FILE})")
  if any(name not in copies for name in missing):
    raise FileNotFoundError(
        f"{workdir}: {shown} missing, and "
        + (f"checkpoint {step} holds no copy (it predates the copies)" if step is not None
           else "there is no checkpoint")
        + "; without the run's own files its checkpoints cannot be read")
  log.warning("%s: %s missing from the workdir; using the copies in checkpoint %d",
              workdir, shown, step)
  for name in missing:
    if name in (CONFIG_FILE, TASKS_FILE, ENCODER_FILE):
      files[name] = copies[name]
  if tokenizer is None:
    tokenizer = tokenizers.Tokenizer.from_str(json.dumps(copies[TOKENIZER_FILE]))
  return files, tokenizer


def load(workdir: str) -> Run:
  """Rebuilds a saved run's tasks, labels, tokenizer and model (no data is read).

  Files missing from the workdir are read from its latest checkpoint's copies.
  """
  files, tokenizer = read_run_files(workdir)
  config = config_lib.resolve(files[CONFIG_FILE])
  saved = files[TASKS_FILE]
  encoder_config = EncoderConfig(**files[ENCODER_FILE])
  tasks = build_tasks(config)
  labels = {t.name: tuple(saved[t.name]["labels"]) for t in tasks}
  rates = ({t.name: saved[t.name]["rate"] for t in tasks}
           if config.mixture and all(saved[t.name].get("rate") for t in tasks) else None)
  return Run(config, tasks, labels, tokenizer, encoder_config,
             model_for(config, encoder_config, tasks, labels), rates=rates)


def write_json(path: str, value: Any) -> None:
  """Writes `value` as JSON by temporary file + rename (never a half-written file)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=2, sort_keys=True)
  os.replace(tmp, path)

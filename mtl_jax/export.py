"""A trained workdir's model, written for use elsewhere (`mtl-jax export`).

    OUT/
      encoder/                 the shared encoder as a Hugging Face BERT folder
                               (config.json, model.safetensors, tokenizer files):
                               `transformers.AutoModel.from_pretrained(OUT/encoder)`
      heads/TASK.safetensors   each task's head, tensors named by their path
      heads/TASK.json          its kind, labels and tensor shapes
      extra.safetensors        every other param (adapters, per-task layers,
                               cross-stitch units, task embeddings), by path
      trainable.safetensors    adapters over a frozen encoder: what was trained
      tokenizer/               the run's tokenizer
      run.json                 the config, labels and encoder architecture:
                               `Predictor.from_export(OUT)` needs nothing else

The encoder folder is written where the shared encoder is a whole BERT (hard
sharing, adapters, task embeddings: what every task's input passes through
first, though adapters and task embeddings add their own parts, in
`extra.safetensors`); architectures that give each task layers of its own
(layerwise, multi-task attention, cross-stitch) keep their shared layers in
`extra.safetensors` with the rest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile

import jax
import numpy as np
from flax import traverse_util

from mtl_jax import config as config_lib
from mtl_jax.encoders.config import EncoderConfig
from mtl_jax.encoders.pretrained import export_pretrained, load_pretrained
from mtl_jax.sharing import check_params_fit, load_params, save_params, save_trainable
from mtl_jax.tasks import tokenization
from mtl_jax.training import run as run_lib

ENCODER_DIR = "encoder"
HEADS_DIR = "heads"
EXTRA_FILE = "extra.safetensors"
RUN_FILE = "run.json"
_SEP = "/"


def export_workdir(workdir: str, out: str, step: int | str | None = None,
                   task: str | None = None) -> str:
  """Writes a workdir's checkpoint to `out` (layout: module docstring).

  Args:
    workdir: a training workdir.
    out: the folder to create; it must not exist or be empty (nothing is
      overwritten). Written under a temporary name beside it, then renamed.
    step: the checkpoint: a step number, 'best' or latest (None).
    task: export only this task's head (and its own layers), with the encoder.

  Returns:
    `out`.

  Raises:
    FileExistsError: `out` holds files.
    KeyError: no such task in the run.
  """
  if os.path.isdir(out) and os.listdir(out):
    raise FileExistsError(f"{out}: exists and is not empty; export writes a new folder")
  run = run_lib.load(workdir)
  params = jax.device_get(run_lib.restore_params(run, workdir, step))
  names = run.task_names if task is None else (run.task(task).name,)
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
  try:
    _write(run, params, names, tmp)
    if os.path.isdir(out):
      os.rmdir(out)  # empty (checked above)
    os.replace(tmp, out)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return out


def _write(run: run_lib.Run, params: dict, names: tuple[str, ...], out: str) -> None:
  model = run.model
  # Only the exported tasks' copies of per-task entries (heads among them).
  params = {key: ({n: value[n] for n in names} if key in model.task_keys else value)
            for key, value in params.items()}
  encoder = params["encoder"]
  extra = {key: value for key, value in params.items() if key != "heads"}
  if _is_whole_bert(encoder, run.encoder_config):
    export_pretrained(os.path.join(out, ENCODER_DIR), run.encoder_config, encoder)
    tokenization.save_tokenizer(run.tokenizer, os.path.join(out, ENCODER_DIR))
    del extra["encoder"]
  if extra:
    save_params(os.path.join(out, EXTRA_FILE), extra)
  os.makedirs(os.path.join(out, HEADS_DIR))
  for name in names:
    head = params["heads"][name]
    save_params(os.path.join(out, HEADS_DIR, f"{name}.safetensors"), head)
    task = run.task(name)
    flat = traverse_util.flatten_dict(head, sep=_SEP)
    run_lib.write_json(os.path.join(out, HEADS_DIR, f"{name}.json"), {
        "task": name, "kind": task.kind, "labels": list(run.labels[name]),
        "shapes": {path: list(np.shape(value)) for path, value in sorted(flat.items())}})
  if model.frozen_keys:
    save_trainable(os.path.join(out, run_lib.TRAINABLE_FILE), model, params)
  tokenization.save_tokenizer(run.tokenizer, os.path.join(out, run_lib.TOKENIZER_DIR))
  config = run.config.to_dict()
  specs = run_lib.task_specs(run.config)
  config["tasks"] = {name: specs[name] for name in names}
  config["mixture"] = ""
  run_lib.write_json(os.path.join(out, RUN_FILE), {
      "config": config, "labels": {n: list(run.labels[n]) for n in names},
      "encoder": dataclasses.asdict(run.encoder_config)})


def load_export(out: str) -> tuple[run_lib.Run, dict]:
  """The run (no data) and params of an export, for `Predictor.from_export`.

  Raises:
    FileNotFoundError: `out` is not an export.
    ValueError: a tensor is missing, unexpected or mis-shaped (named).
  """
  path = os.path.join(out, RUN_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{out}: not an mtl-jax export (no {RUN_FILE})")
  with open(path) as f:
    saved = json.load(f)
  config = config_lib.resolve(saved["config"])
  encoder_config = EncoderConfig(**saved["encoder"])
  tasks = run_lib.build_tasks(config)
  labels = {t.name: tuple(saved["labels"][t.name]) for t in tasks}
  tokenizer = tokenization.load_tokenizer(os.path.join(out, run_lib.TOKENIZER_DIR))
  model = run_lib.model_for(config, encoder_config, tasks, labels)
  run = run_lib.Run(config, tasks, labels, tokenizer, encoder_config, model)
  params = {}
  if os.path.exists(os.path.join(out, EXTRA_FILE)):
    params.update(load_params(os.path.join(out, EXTRA_FILE)))
  if os.path.isdir(os.path.join(out, ENCODER_DIR)):
    _, params["encoder"] = load_pretrained(os.path.join(out, ENCODER_DIR))
  params["heads"] = {t.name: load_params(os.path.join(out, HEADS_DIR, f"{t.name}.safetensors"))
                     for t in tasks}
  check_params_fit(params, jax.eval_shape(model.init, jax.random.key(0)), out)
  return run, params


def _is_whole_bert(encoder: dict, config: EncoderConfig) -> bool:
  return "embeddings" in encoder and all(f"layer_{i}" in encoder
                                         for i in range(config.num_layers))

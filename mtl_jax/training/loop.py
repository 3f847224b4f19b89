"""The training loop: data, one jitted step, logs, checkpoints, evaluation.

One readable function (`train`), as big_vision's train.py: everything it
builds comes from the config, the step is jitted once with the state
donated, and the host only fetches metrics every `log_every` steps so the
device never waits for it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from mtl_jax import metrics as metrics_lib
from mtl_jax.tasks import tokenization
from mtl_jax.tasks.batching import StreamPosition, TaskStream, joint_batches
from mtl_jax.training import run as run_lib
from mtl_jax.training.checkpoint import Checkpointer
from mtl_jax.training.evaluate import evaluate
from mtl_jax.training.step import make_predict_step, make_train_step

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
TRAIN_LOG = "train_log.jsonl"
BALANCING_PLOT = "balancing.png"


class NonFiniteLossError(FloatingPointError):
  """A task's loss became NaN or infinite; no checkpoint of that state is kept."""


def _stream_seed(seed: int, index: int) -> int:
  return seed * 1000 + index


def train(config: ml_collections.ConfigDict, workdir: str, *,
          progress: bool = True) -> dict[str, dict[str, float]]:
  """Trains the tasks of `config` jointly and evaluates them.

  A workdir that already holds a checkpoint of this run resumes from it.

  Args:
    config: a resolved run config (`mtl_jax.config.load_config`).
    workdir: where the config, tokenizer, checkpoints, logs and
      `metrics.json` go.
    progress: show a progress bar with the per-task losses.

  Returns:
    {task: {metric: value}} on each task's eval split (also in
    `WORKDIR/metrics.json`).
  """
  os.makedirs(workdir, exist_ok=True)
  checkpointer = Checkpointer(os.path.join(workdir, run_lib.CHECKPOINT_DIR))
  resuming = checkpointer.latest_step() is not None
  saved_tokenizer = (tokenization.load_tokenizer(os.path.join(workdir, run_lib.TOKENIZER_DIR))
                     if resuming else None)
  run = run_lib.prepare(config, tokenizer=saved_tokenizer)
  run_lib.save(run, workdir)
  names = run.task_names

  train_splits, eval_splits = {}, {}
  for task in run.tasks:
    train_splits[task.name] = task.load("train", run.tokenizer, run.labels[task.name],
                                        raw=run.train_raw[task.name])
    if "eval" in task.source.splits:
      eval_splits[task.name] = task.load("eval", run.tokenizer, run.labels[task.name])
  _report_data(train_splits, eval_splits)

  train_cfg = config.train
  state, optimizer, weighting, schedule = run_lib.initial_state(run)
  positions = {name: StreamPosition() for name in names}
  if resuming:
    state, meta = checkpointer.restore(state)
    positions = {name: StreamPosition(**meta["streams"][name]) for name in names}
    log.info("resumed from step %d", int(state.step))

  balancing = config.balancing
  train_step = jax.jit(make_train_step(run.model, run.kinds, weighting, optimizer,
                                       gradient_mode=balancing.gradient_mode,
                                       diagnostics=balancing.diagnostics,
                                       last_layer=balancing.last_layer),
                       donate_argnums=0)
  predict_step = jax.jit(make_predict_step(run.model, run.kinds))
  streams = {name: TaskStream(train_splits[name], train_cfg.batch_size,
                              train_cfg.buckets, _stream_seed(config.seed, k),
                              positions[name])
             for k, name in enumerate(names)}
  batches = joint_batches(streams)

  def evaluate_now():
    return evaluate(predict_step, state.params, eval_splits, run.kinds, run.labels,
                    train_cfg.eval_batch_size, train_cfg.buckets)

  def checkpoint(step):
    meta = {"streams": {n: vars(s.position) for n, s in streams.items()}}
    checkpointer.save(step, state, meta)

  # A host copy: the state's own buffers are donated to the step.
  dropout_rng = np.asarray(jax.device_get(state.rng))
  first_step = int(state.step)
  bar = tqdm(range(first_step, train_cfg.steps), initial=first_step,
             total=train_cfg.steps, disable=not progress, desc="train", unit="step")
  start = time.time()
  with open(os.path.join(workdir, TRAIN_LOG), "a") as train_log:
    for step in bar:
      batch = next(batches)
      state, step_metrics = train_step(state, batch, jax.random.fold_in(dropout_rng, step))
      done = step + 1
      if done % train_cfg.log_every == 0 or done == train_cfg.steps:
        record = _fetch(step_metrics, names, done, float(schedule(step)))
        train_log.write(json.dumps(record) + "\n")
        train_log.flush()
        bar.set_postfix({n: f"{record['losses'][n]:.3f}" for n in names})
      if train_cfg.eval_every and done % train_cfg.eval_every == 0 and done < train_cfg.steps:
        results = evaluate_now()
        train_log.write(json.dumps({"step": done, "eval": results}) + "\n")
        log.info("step %d eval: %s", done, results)
      if (train_cfg.checkpoint_every and done % train_cfg.checkpoint_every == 0
          and done < train_cfg.steps):
        checkpoint(done)
  elapsed = time.time() - start
  if first_step < train_cfg.steps:
    checkpoint(train_cfg.steps)
  if balancing.diagnostics:
    from mtl_jax.metrics import plots  # matplotlib only where it is used
    plots.plot_balancing(os.path.join(workdir, TRAIN_LOG),
                         os.path.join(workdir, BALANCING_PLOT))
  results = evaluate_now() if eval_splits else {}
  checkpointer.wait()
  checkpointer.close()
  if results:
    metrics_lib.write_json(results, os.path.join(workdir, METRICS_FILE))
    print(metrics_lib.format_table(results))
  log.info("trained %d steps in %.1fs", train_cfg.steps - first_step, elapsed)
  return results


def _fetch(step_metrics: dict[str, Any], names, step: int, learning_rate: float
           ) -> dict[str, Any]:
  """Host copy of a step's metrics; a non-finite loss stops the run."""
  values = jax.device_get(step_metrics)
  losses = {n: float(v) for n, v in zip(names, values["losses"])}
  bad = [n for n, v in losses.items() if not np.isfinite(v)]
  if bad or not np.isfinite(values["loss"]):
    raise NonFiniteLossError(
        f"step {step}: non-finite loss for task(s) {', '.join(bad) or 'all'} "
        f"({losses}); stopping without checkpointing this state. Lower the learning "
        "rate, check the data, or resume from the last checkpoint.")
  record = {"step": step, "loss": float(values["loss"]), "losses": losses,
            "weights": {n: float(v) for n, v in zip(names, values["weights"])},
            "grad_norm": float(values["grad_norm"]), "learning_rate": learning_rate}
  if "grad_norms" in values:  # balancing diagnostics
    record["grad_norms"] = {n: float(v) for n, v in zip(names, values["grad_norms"])}
    record["grad_cosines"] = np.asarray(values["grad_cosines"], float).round(6).tolist()
  return record


def _report_data(train_splits, eval_splits) -> None:
  for split_name, splits in (("train", train_splits), ("eval", eval_splits)):
    for name, split in splits.items():
      message = f"{name} {split_name}: {len(split)} examples"
      if split.num_truncated:
        message += f", {split.num_truncated} truncated to max_length"
      if split.raw.num_skipped:
        message += f", {split.raw.num_skipped} malformed rows skipped"
      log.info(message)
      if split.num_truncated or split.raw.num_skipped:
        print(message)

"""The training loop: data, one sharded jitted step, logs, evaluation, checkpoints.

One readable function (`train`), as big_vision's train.py:

1. join the other hosts (`config.distributed`), build the run and the mesh;
2. take the state's shapes with `jax.eval_shape` and lay them out on the mesh
   by the logical-axis rules; create the state with a jitted init whose
   outputs are sharded (no device ever holds more than its part), or restore
   the latest checkpoint straight into those shardings;
3. jit the step once, state donated, with its output laid out like its input;
   every batch (every task, the schedule's `task_present`/`task_weight`
   saying which ones train) is put on the mesh split along `batch`;
4. log every `log_every` steps, evaluate every `eval_every`, measure task
   relatedness every `relatedness.measure_every`, checkpoint
   (asynchronously) every `checkpoint_every`, at evaluations when keeping the
   best checkpoint, at the end, and on SIGTERM/SIGINT before stopping.

The host only waits for the device to read one flag a step (whether the
previous step was skipped as non-finite), while the next step is queued.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import ml_collections
from jax.experimental import multihost_utils
from tqdm import tqdm

from mtl_jax import encoders
from mtl_jax import metrics as metrics_lib
from mtl_jax import relatedness
from mtl_jax import sharding
from mtl_jax.sharing import save_trainable
from mtl_jax.tasks import tokenization
from mtl_jax.tasks.batching import StreamPosition, TaskStream, stream_seed
from mtl_jax.training import resume
from mtl_jax.training import run as run_lib
from mtl_jax.training import sharded
from mtl_jax.training.checkpoint import Checkpointer
from mtl_jax.training.evaluate import evaluate
from mtl_jax.training.nonfinite import NonFiniteCounter, NonFiniteLossError
from mtl_jax.training.preemption import Interrupted, stop_on_signals
from mtl_jax.training.prefetch import Prefetcher
from mtl_jax.training.schedules import make_schedule, scheduled_batches
from mtl_jax.training.step import make_predict_step, make_train_step, task_losses
from mtl_jax.training.tensorboard import open_writer

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
TRAIN_LOG = "train_log.jsonl"
BALANCING_PLOT = "balancing.png"

__all__ = ["Interrupted", "NonFiniteLossError", "train"]


def make_streams(train_splits, batch_size: int, buckets, seed: int,
                 positions: dict[str, StreamPosition] | None = None) -> dict[str, TaskStream]:
  """Each task's training stream, its order keyed by the run's seed and the task's name.

  Args:
    train_splits: {task: its encoded train split}.
    batch_size: rows per batch.
    buckets: the padded lengths.
    seed: the run's seed.
    positions: {task: where its stream resumes}; a task without one starts.

  Returns:
    {task: TaskStream}, in the order of `train_splits`.
  """
  positions = positions or {}
  return {name: TaskStream(split, batch_size, buckets, stream_seed(seed, name),
                           positions.get(name))
          for name, split in train_splits.items()}


def train(config: ml_collections.ConfigDict, workdir: str, *,
          progress: bool = True) -> dict[str, dict[str, float]]:
  """Trains the tasks of `config` jointly and evaluates them.

  A workdir that already holds a checkpoint of this run resumes from it,
  exactly: the state, every task's data position and the non-finite counts
  come back, so the run reaches the same params as if it had not stopped.

  Args:
    config: a resolved run config (`mtl_jax.config.load_config`).
    workdir: where the config, tokenizer, checkpoints, logs and
      `metrics.json` go (on several hosts: a folder they all see).
    progress: show a progress bar with the per-task losses.

  Returns:
    {task: {metric: value}} on each task's eval split (also in
    `WORKDIR/metrics.json`).

  Raises:
    Interrupted: SIGTERM/SIGINT stopped the run after checkpointing.
    NonFiniteLossError: `train.max_nonfinite_in_a_row` steps in a row were
      skipped.
    ValueError: a bad config, or a workdir checkpoint that is corrupt or
      from a different run.
  """
  sharding.initialize(config.distributed)
  primary = sharding.is_primary()
  os.makedirs(workdir, exist_ok=True)
  checkpointer = Checkpointer.from_config(os.path.join(workdir, run_lib.CHECKPOINT_DIR),
                                          config.checkpoint)
  with contextlib.ExitStack() as stack:
    stack.callback(checkpointer.close)  # also waits for a save in flight
    latest = checkpointer.latest_step()
    run = _prepare(config, workdir, resuming=latest is not None, primary=primary)
    names = run.task_names

    train_splits, eval_splits = {}, {}
    for task in run.tasks:
      train_splits[task.name] = task.load("train", run.tokenizer, run.labels[task.name],
                                          raw=run.train_raw[task.name])
      if "eval" in task.source.splits:
        eval_splits[task.name] = task.load("eval", run.tokenizer, run.labels[task.name])
    _report_data(train_splits, eval_splits)

    train_cfg = config.train
    best_metric = config.checkpoint.best_metric
    _check_best_metric(best_metric, eval_splits, train_cfg.eval_every)
    layout = sharding.Layout.from_config(config.mesh)
    if train_cfg.batch_size % layout.batch_parallelism:
      raise ValueError(f"train.batch_size ({train_cfg.batch_size}) must be a multiple of "
                       f"the {layout.batch_parallelism} ways the mesh splits a batch "
                       f"(mesh.shape {config.mesh.shape.to_dict()})")
    stack.enter_context(layout.activate())
    init, abstract, optimizer, weighting, schedule = run_lib.abstract_state(run, layout)
    meta = {}
    if latest is None:
      state = sharded.create_state(init, abstract, layout, run.pretrained_encoder,
                                   encoders.logical_axes(run.model.encoder_config))
    else:
      state, meta = checkpointer.restore(abstract, latest)
      log.info("resumed from step %d", latest)
    if primary:  # drop what a crashed run logged after its last checkpoint (or before any)
      _truncate_log(os.path.join(workdir, TRAIN_LOG), latest or 0)
    positions = {name: StreamPosition(**meta.get("streams", {}).get(name, {}))
                 for name in names}
    nonfinite = NonFiniteCounter(train_cfg.max_nonfinite_in_a_row,
                                 **meta.get("nonfinite", {}))

    first_step = int(state.step)

    balancing = config.balancing
    regularizer = relatedness.make_regularizer(config.relatedness, names)
    train_step = sharded.jit_train_step(
        make_train_step(run.model, run.kinds, weighting, optimizer,
                        gradient_mode=balancing.gradient_mode,
                        diagnostics=balancing.diagnostics, last_layer=balancing.last_layer,
                        regularizer=regularizer),
        abstract, layout)
    predict_jit = jax.jit(make_predict_step(run.model, run.kinds),
                          out_shardings=layout.replicated)
    streams = make_streams(train_splits, train_cfg.batch_size, train_cfg.buckets,
                           config.seed, positions)
    # Sampled schedules draw tasks by the mixture's rates, else by train size.
    task_schedule = make_schedule(config.schedule, names,
                                  {n: len(s) for n, s in train_splits.items()},
                                  config.seed, rates=run.rates)
    # Built and put on the mesh ahead of the step; `batches.positions` are the
    # streams' positions after the last batch handed out (what a resume needs).
    batches = stack.enter_context(Prefetcher(
        scheduled_batches(streams, task_schedule, first_step), put=layout.put_batch,
        positions=lambda: {n: dict(vars(s.position)) for n, s in streams.items()}))
    monitor = relatedness.RelatednessMonitor(
        run.model, functools.partial(task_losses, run.model, run.kinds, train=False,
                                     rng=None),
        train_splits, train_cfg.batch_size, train_cfg.buckets, config.seed,
        config.relatedness, regularizer, workdir, first_step, meta.get("probe_streams"),
        put=layout.put_batch, write=primary)

    def evaluate_now():
      return evaluate(lambda params, batch: predict_jit(params, layout.put_batch(batch)),
                      state.params, eval_splits, run.kinds, run.labels,
                      train_cfg.eval_batch_size, train_cfg.buckets)

    def checkpoint(step, results=None):
      meta = {"streams": batches.positions,
              "nonfinite": nonfinite.to_json(),
              "probe_streams": monitor.positions()}
      flat = {f"{task}/{name}": value for task, values in (results or {}).items()
              for name, value in values.items()}
      if flat and best_metric and best_metric not in flat:
        raise ValueError(f"checkpoint.best_metric {best_metric!r} is not an eval metric; "
                         f"they are: {', '.join(sorted(flat))}")
      checkpointer.save(step, state, meta, config=config.to_dict(), metrics=flat or None)

    def stop(step):
      # A signal can arrive just after this step's regular (or the restored)
      # checkpoint: that one already holds the state to resume from.
      if step not in checkpointer.steps():
        checkpoint(step)
      checkpointer.wait()
      raise Interrupted(should_stop.signal_number, step, workdir)

    total = train_cfg.steps
    bar = tqdm(range(first_step, total), initial=first_step, total=total,
               disable=not (progress and primary), desc="train", unit="step")
    train_log = (stack.enter_context(open(os.path.join(workdir, TRAIN_LOG), "a"))
                 if primary else None)
    board = stack.enter_context(open_writer(workdir, train_cfg.tensorboard, primary, first_step))
    should_stop = stack.enter_context(stop_on_signals(checkpointer.reached_preemption))
    # (step, its `skipped` flag) of the last step not yet counted.
    pending = None
    # Each task's losses summed over the steps it took part in since the last
    # log (on device, so logging every N steps still never waits for it).
    loss_sums_k, present_counts_k = 0.0, np.zeros(len(names))

    def count_pending():
      nonlocal pending
      if pending is not None:
        nonfinite.record(pending[0], bool(jax.device_get(pending[1])))
        pending = None

    start = time.time()
    for step in bar:
      if should_stop(step):
        count_pending()
        stop(step)
      state, step_metrics = train_step(state, next(batches))
      present_k = task_schedule.present(step)
      loss_sums_k = loss_sums_k + jnp.where(present_k, step_metrics["losses"], 0.0)
      present_counts_k += present_k
      done = step + 1
      monitor.maybe_measure(done, state.params)
      count_pending()  # the previous step's, while this one runs
      pending = (done, step_metrics["skipped"])
      logging_now = done % train_cfg.log_every == 0 or done == total
      evaluating = bool(eval_splits and train_cfg.eval_every
                        and done % train_cfg.eval_every == 0 and done < total)
      checkpointing = (done < total and (
          (train_cfg.checkpoint_every and done % train_cfg.checkpoint_every == 0)
          or (evaluating and best_metric)))
      if logging_now or evaluating or checkpointing:
        count_pending()
      if logging_now:
        record = _record(step_metrics, names, done, float(schedule(step)), nonfinite,
                         loss_sums_k, present_counts_k)
        loss_sums_k, present_counts_k = 0.0, np.zeros(len(names))
        _write(train_log, record, board)
        bar.set_postfix({n: f"{v:.3f}" if v is not None else "nan"
                         for n, v in record["losses"].items()})
      results = None
      if evaluating:
        results = evaluate_now()
        _write(train_log, {"step": done, "eval": results}, board)
        log.info("step %d eval: %s", done, results)
      if checkpointing:
        checkpoint(done, results)
    count_pending()
    elapsed = time.time() - start
    if should_stop(total):
      stop(total)
    results = evaluate_now() if eval_splits else {}
    board.write({"step": total, "eval": results})
    if first_step < total:
      checkpoint(total, results)
    if run.model.frozen_keys and primary:
      save_trainable(os.path.join(workdir, run_lib.TRAINABLE_FILE), run.model, state.params)
    monitor.write()
    if balancing.diagnostics and primary:
      from mtl_jax.metrics import plots  # matplotlib only where it is used
      plots.plot_balancing(os.path.join(workdir, TRAIN_LOG),
                           os.path.join(workdir, BALANCING_PLOT))
    checkpointer.wait()
    if results and primary:
      metrics_lib.write_json(results, os.path.join(workdir, METRICS_FILE))
      print(metrics_lib.format_table(results))
    log.info("trained %d steps in %.1fs", total - first_step, elapsed)
    return results


def _prepare(config: ml_collections.ConfigDict, workdir: str, *, resuming: bool,
             primary: bool) -> run_lib.Run:
  """The run, saved to the workdir (by host 0).

  A resumed run keeps its tokenizer and must match the checkpoint's run. With
  several hosts, host 0 settles the tokenizer and the others read it: one
  trained on each host would number its vocabulary differently.
  """
  tokenizer_dir = os.path.join(workdir, run_lib.TOKENIZER_DIR)
  if resuming:
    run = run_lib.prepare(config, tokenizer=tokenization.load_tokenizer(tokenizer_dir))
    resume.check_compatible(workdir, run)
  elif jax.process_count() == 1 or primary:
    run = run_lib.prepare(config)
  if jax.process_count() > 1:
    if primary and not resuming:
      tokenization.save_tokenizer(run.tokenizer, tokenizer_dir)
    multihost_utils.sync_global_devices("mtl_jax: tokenizer saved, run files read")
    if not primary and not resuming:
      run = run_lib.prepare(config, tokenizer=tokenization.load_tokenizer(tokenizer_dir))
  if primary:
    run_lib.save(run, workdir)
  return run


def _check_best_metric(best_metric: str, eval_splits, eval_every: int) -> None:
  if not best_metric:
    return
  task = best_metric.partition("/")[0]
  if "/" not in best_metric or task not in eval_splits:
    raise ValueError(f"checkpoint.best_metric {best_metric!r} must be 'task/metric' for a "
                     f"task with an eval split: {', '.join(eval_splits) or 'none'}")
  if not eval_every:
    log.warning("checkpoint.best_metric is set but train.eval_every is 0: only the final "
                "checkpoint has metrics")


def _truncate_log(path: str, step: int) -> None:
  """Drops the records after `step` (steps a crash lost; the resumed run redoes them)."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
  with open(path + ".tmp", "w") as f:
    f.writelines(lines)
  os.replace(path + ".tmp", path)


def _finite(value) -> float | None:
  """A float for the JSON log; None for NaN/inf (not valid JSON)."""
  value = float(value)
  return value if abs(value) != float("inf") and value == value else None


def _record(step_metrics: dict[str, Any], names, step: int, learning_rate: float,
            nonfinite: NonFiniteCounter, loss_sums_k, present_counts_k) -> dict[str, Any]:
  """The host copy of the metrics since the last log, for the train log.

  `losses` are each task's mean over the steps it took part in since the
  last log (None if it took part in none, or if one was not finite); the
  rest are the last step's.
  """
  values, sums_k = jax.device_get((step_metrics, loss_sums_k))
  means_k = np.asarray(sums_k, np.float64) / np.maximum(present_counts_k, 1)
  record = {"step": step, "loss": _finite(values["loss"]),
            "losses": {n: _finite(v) if count else None
                       for n, v, count in zip(names, means_k, present_counts_k)},
            "weights": {n: _finite(v) for n, v in zip(names, values["weights"])},
            "grad_norm": _finite(values["grad_norm"]), "learning_rate": learning_rate,
            "skipped": bool(values["skipped"]), "nonfinite_total": nonfinite.total}
  if "regularizer" in values:  # the task-relatedness penalty
    record["regularizer"] = _finite(values["regularizer"])
  if "grad_norms" in values:  # balancing diagnostics
    record["grad_norms"] = {n: _finite(v) for n, v in zip(names, values["grad_norms"])}
    record["grad_cosines"] = np.asarray(values["grad_cosines"], float).round(6).tolist()
  return record


def _write(train_log, record: dict[str, Any], board=None) -> None:
  if board is not None:  # TensorBoard (train.tensorboard)
    board.write(record)
  if train_log is not None:
    train_log.write(json.dumps(record) + "\n")
    train_log.flush()


def _report_data(train_splits, eval_splits) -> None:
  for split_name, splits in (("train", train_splits), ("eval", eval_splits)):
    for name, split in splits.items():
      message = f"{name} {split_name}: {len(split)} examples"
      if split.num_truncated:
        message += f", {split.num_truncated} truncated to max_length"
      if split.raw.num_skipped:
        message += f", {split.raw.num_skipped} malformed rows skipped"
      log.info(message)
      if (split.num_truncated or split.raw.num_skipped) and sharding.is_primary():
        print(message)

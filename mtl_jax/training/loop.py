"""The training loop: data, one sharded jitted step, logs, evaluation, checkpoints.

One readable function (`train`) in banner sections, as big_vision's train.py:

1. Setup: join the other hosts (`config.distributed`), open the workdir's
   checkpoints, build the run (tasks, labels, tokenizer, model);
2. Data: read and tokenize every task's train and eval splits;
3. Mesh and state: the run's `Trainer` (`run.make_trainer`: optimizer,
   balancing method, the state's shapes laid out on the mesh by the
   logical-axis rules, the pure step); the state is created by a jitted init
   whose outputs are sharded (no device ever holds more than its part), or
   restored straight into those shardings; the step is jitted with the state
   donated and its output laid out like its input (compiled once per length
   bucket);
4. Input pipeline: each task's stream, the schedule (`task_present` /
   `task_weight` say which tasks train), batches prefetched onto the mesh
   split along `batch`;
5. The loop: log every `log_every` steps, evaluate every `eval_every`,
   measure task relatedness every `relatedness.measure_every`, checkpoint
   (asynchronously) every `checkpoint_every`, at evaluations when keeping the
   best checkpoint, and on SIGTERM/SIGINT before stopping;
6. The end: the final evaluation and checkpoint, the run's files.

The host never waits for the device between steps: the non-finite counts stay
on device (advanced by the step) and are read, with the logged metrics, only
when the loop logs, evaluates, checkpoints or stops.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import ml_collections
from jax.experimental import multihost_utils
from tqdm import tqdm

from mtl_jax import metrics as metrics_lib
from mtl_jax.metrics import main as metrics_main
from mtl_jax import relatedness
from mtl_jax import sharding
from mtl_jax.sharing import save_trainable
from mtl_jax.tasks import tokenization
from mtl_jax.constants import TASK_TOKEN_SLOTS, TOKEN_SLOTS
from mtl_jax.tasks.batching import StreamPosition, TaskStream, stream_seed, with_token_slots
from mtl_jax.training import resume
from mtl_jax.training import run as run_lib
from mtl_jax.training.checkpoint import Checkpointer
from mtl_jax.training.early_stopping import EarlyStopping
from mtl_jax.training.evaluate import evaluate, metrics_filename, report_splits
from mtl_jax.training.lock import workdir_lock
from mtl_jax.training.nonfinite import NonFiniteCounter, NonFiniteLossError
from mtl_jax.training.preemption import Interrupted, stop_on_signals
from mtl_jax.training.prefetch import Prefetcher
from mtl_jax.training.schedules import make_schedule, scheduled_batches
from mtl_jax.training.step import make_predict_step, task_losses
from mtl_jax.training.tensorboard import open_writer

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
TRAIN_LOG = "train_log.jsonl"
BALANCING_PLOT = "balancing.png"

__all__ = ["Interrupted", "NonFiniteLossError", "train"]


def make_streams(train_splits, batch_size: int | dict[str, int], buckets, seed: int,
                 positions: dict[str, StreamPosition] | None = None) -> dict[str, TaskStream]:
  """Each task's training stream, its order keyed by the run's seed and the task's name.

  Args:
    train_splits: {task: its encoded train split}.
    batch_size: rows per batch, or {task: its rows per batch}.
    buckets: the padded lengths.
    seed: the run's seed.
    positions: {task: where its stream resumes}; a task without one starts.

  Returns:
    {task: TaskStream}, in the order of `train_splits`.
  """
  positions = positions or {}
  sizes = batch_size if isinstance(batch_size, dict) else dict.fromkeys(train_splits, batch_size)
  return {name: TaskStream(split, sizes[name], buckets, stream_seed(seed, name),
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
  # --------------------------------------------------------------------------
  # Setup: the hosts, the workdir's checkpoints, the run's fixed parts.
  # --------------------------------------------------------------------------
  # Everything checkable without the data, before anything is written.
  _check_counts(config.train)
  run_lib.validate(config)
  sharding.initialize(config.distributed)
  primary = sharding.is_primary()
  layout = _layout(config)  # the mesh (and that the batch splits over it)
  with contextlib.ExitStack() as stack:
    created = primary and not os.path.exists(workdir)
    stack.enter_context(workdir_lock(workdir, take=primary))  # one trainer per workdir
    checkpoint_dir = os.path.join(workdir, run_lib.CHECKPOINT_DIR)
    try:
      run = _prepare(config, workdir, resuming=Checkpointer.has_checkpoints(checkpoint_dir),
                     primary=primary)
      names, train_cfg = run.task_names, config.train
      best_metric = config.checkpoint.best_metric

      # ----------------------------------------------------------------------
      # Data: every task's train split (and eval split, where it has one).
      # ----------------------------------------------------------------------
      train_splits, eval_splits = load_splits(run)
      _check_best_metric(best_metric, eval_splits, train_cfg.eval_every, train_cfg.patience)
    except BaseException:
      if created:  # a failed start leaves nothing behind
        shutil.rmtree(workdir, ignore_errors=True)
      raise
    files = run_lib.run_files(run)  # a copy in every checkpoint
    # Started after the data is read: the manager's background threads would
    # otherwise outlive an early data error with a traceback of their own.
    checkpointer = Checkpointer.from_config(checkpoint_dir, config.checkpoint)
    stack.callback(checkpointer.close)  # also waits for a save in flight
    latest = checkpointer.latest_step()

    # ------------------------------------------------------------------------
    # Mesh and state: the run's step and its state, created sharded or restored.
    # ------------------------------------------------------------------------
    stack.enter_context(layout.activate())
    trainer = run_lib.make_trainer(run, layout)
    if latest is None:
      state, meta = trainer.create_state(run), {}
    else:
      state, meta = checkpointer.restore(trainer.abstract_state, latest)
      log.info("resumed from step %d", latest)
      if primary:
        print(f"resuming from step {latest}", flush=True)
    if primary:  # drop what a crashed run logged after its last checkpoint (or before any)
      _truncate_log(os.path.join(workdir, TRAIN_LOG), latest or 0)
    first_step, total = int(state.step), train_cfg.steps
    # Counted on device by the step; read only when the loop logs or checkpoints.
    nonfinite = NonFiniteCounter(
        train_cfg.max_nonfinite_in_a_row, **meta.get("nonfinite", {}),
        put=layout.put_replicated)
    loop_step = trainer.jit_loop_step(train_cfg.max_nonfinite_in_a_row)
    # A run that stopped early (saved in the meta) stays stopped when resumed.
    early = EarlyStopping(train_cfg.patience, config.checkpoint.best_mode,
                          **meta.get("early_stopping", {}))
    scored_tasks = [t for t in run.tasks if t.name in eval_splits]
    predict_jit = jax.jit(make_predict_step(run.model), out_shardings=layout.replicated)

    # ------------------------------------------------------------------------
    # Input pipeline: each task's stream, the schedule, batches on the mesh.
    # ------------------------------------------------------------------------
    positions = {name: StreamPosition(**meta.get("streams", {}).get(name, {}))
                 for name in names}
    batch_sizes = {t.name: t.batch_size or train_cfg.batch_size for t in run.tasks}
    streams = make_streams(train_splits, batch_sizes, train_cfg.buckets, config.seed, positions)
    # Sampled schedules draw tasks by the mixture's rates, else by train size.
    task_schedule = make_schedule(config.schedule, names,
                                  {n: len(s) for n, s in train_splits.items()},
                                  config.seed, rates=run.rates)
    # Built and put on the mesh ahead of the step; `batches.positions` are the
    # streams' positions after the last batch handed out (what a resume needs).
    step_batches = scheduled_batches(streams, task_schedule, first_step)
    if train_cfg.token_buckets:  # each step's real tokens, counted on the host
      each_task = run_lib.encodes_each_task_apart(config, run.model, trainer.weighting)
      step_batches = (with_token_slots(batch, train_cfg.token_buckets, each_task)
                      for batch in step_batches)
    batches = stack.enter_context(Prefetcher(
        step_batches, put=layout.put_batch,
        positions=lambda: {n: dict(vars(s.position)) for n, s in streams.items()}))
    monitor = relatedness.RelatednessMonitor(
        run.model, functools.partial(task_losses, run.model, train=False, rng=None),
        train_splits, train_cfg.batch_size, train_cfg.buckets, config.seed,
        config.relatedness, trainer.regularizer, workdir, first_step,
        meta.get("probe_streams"), put=layout.put_batch, write=primary)

    def evaluate_now(splits=None):
      return evaluate(lambda params, batch: predict_jit(params, layout.put_batch(batch)),
                      state.params, eval_splits if splits is None else splits, run.kinds,
                      run.labels, train_cfg.eval_batch_size, train_cfg.buckets,
                      train_cfg.token_buckets)

    def check_nonfinite():
      """The skipped-step counts (a host sync); a streak stops the run, saying what
      is kept (nothing is saved after the streak began)."""
      try:
        return nonfinite.check()
      except NonFiniteLossError as error:
        latest = checkpointer.latest_step()
        raise NonFiniteLossError(
            f"{error} " + (f"The last checkpoint (step {latest}) is kept."
                           if latest is not None else
                           "No checkpoint was written before the stop.")) from None

    def checkpoint(step, flat=None):
      """Saves the state; `flat`: the step's `_flat_metrics`, for keep-best."""
      counts = check_nonfinite()
      meta = {"streams": batches.positions,
              "nonfinite": {"total": counts.total, "in_a_row": counts.in_a_row},
              "probe_streams": monitor.positions(), "early_stopping": early.to_meta()}
      checkpointer.save(step, state, meta, run_files=files, metrics=flat or None)

    def stop(step):
      check_nonfinite()  # a streak that ended the run stops it as such
      # A signal can arrive just after this step's regular (or the restored)
      # checkpoint: that one already holds the state to resume from.
      if step not in checkpointer.steps():
        checkpoint(step)
      checkpointer.wait()
      raise Interrupted(should_stop.signal_number, step, workdir)

    # ------------------------------------------------------------------------
    # The loop: a step, then whatever is due after it (log, eval, checkpoint).
    # ------------------------------------------------------------------------
    last_step = total if early.stopped_at is None else first_step
    bar = tqdm(range(first_step, last_step), initial=first_step, total=total,
               disable=not (progress and primary), desc="train", unit="step")
    train_log = TrainLog(os.path.join(workdir, TRAIN_LOG)) if primary else None
    board = stack.enter_context(open_writer(workdir, train_cfg.tensorboard, primary, first_step))
    should_stop = stack.enter_context(stop_on_signals(checkpointer.reached_preemption))
    losses = _LossMeans(len(names))
    start = last_log = time.time()
    last_logged_step, shapes_seen = first_step, set()
    for step in bar:
      if should_stop(step):
        stop(step)
      batch = next(batches)
      shape = step_shape(batch, names)
      if shape not in shapes_seen:  # the first step of each bucket compiles (35-70 s here)
        shapes_seen.add(shape)
        if primary:
          bar.write(f"compiling the step for length {shape[0]}"
                    + (f", {shape[1]} token slots" if shape[1] else "")
                    + " (once per length bucket" + (" and capacity)" if shape[1] else ")"))
      state, nonfinite.counts, step_metrics = loop_step(state, nonfinite.counts, batch)
      losses.add(step_metrics["losses"], task_schedule.present(step))
      done = step + 1
      monitor.maybe_measure(done, state.params)
      logging_now = done % train_cfg.log_every == 0 or done == total
      evaluating = bool(eval_splits and train_cfg.eval_every
                        and done % train_cfg.eval_every == 0 and done < total)
      checkpointing = (done < total and (
          (train_cfg.checkpoint_every and done % train_cfg.checkpoint_every == 0)
          or (evaluating and best_metric)))
      if logging_now or evaluating or checkpointing:
        skipped = check_nonfinite()  # a host sync, only when something is due
      if logging_now:
        sums_k, counts_k = losses.take()
        record = _record(step_metrics, names, done, float(trainer.learning_rate(step)),
                         skipped.total, sums_k, counts_k)
        # Wall time since the last log (the record's device_get waited for its steps);
        # examples: each task's batch in each step it took part in.
        now = time.time()
        record["seconds_per_step"] = round((now - last_log) / (done - last_logged_step), 4)
        record["examples_per_second"] = round(
            float(np.dot([batch_sizes[n] for n in names], counts_k))
            / max(now - last_log, 1e-9), 2)
        last_log, last_logged_step = now, done
        _write(train_log, record, board)
        bar.set_postfix({n: f"{v:.3f}" if v is not None else "nan"
                         for n, v in record["losses"].items()})
      flat = None
      if evaluating:
        results = evaluate_now()
        _write(train_log, {"step": done, "eval": results}, board)
        log.info("step %d eval: %s", done, results)
        flat = _flat_metrics(results, scored_tasks, best_metric)
        if train_cfg.patience:
          early.update(done, flat[best_metric])
      if checkpointing:
        checkpoint(done, flat)
      if early.stopped_at is not None:
        break
    check_nonfinite()
    elapsed = time.time() - start
    if early.stopped_at is None and should_stop(total):
      stop(total)

    # ------------------------------------------------------------------------
    # The end: the final evaluation and checkpoint, the run's files.
    # ------------------------------------------------------------------------
    results = {}
    if early.stopped_at is None:
      results = evaluate_now() if eval_splits else {}
      if results and first_step < total:  # the log holds every evaluation, the last one too
        _write(train_log, {"step": total, "eval": results}, board)
      if first_step < total:
        checkpoint(total, _flat_metrics(results, scored_tasks, best_metric))
    if train_cfg.patience:
      # With early stopping a run is scored at its best checkpoint, whether its
      # patience ran out or was left at the last step.
      checkpointer.wait()  # the last save decides which is best: let it land
      best_step = checkpointer.best_step()
      if best_step is not None and (early.stopped_at is not None or best_step != total):
        state, _ = checkpointer.restore(trainer.abstract_state, best_step)
        results = evaluate_now()
        if primary:
          message = (f"early stopping at step {early.stopped_at}: no better {best_metric} "
                     f"for {train_cfg.patience} evaluations"
                     if early.stopped_at is not None else
                     f"the best {best_metric} was not at the last step")
          message += f"; scoring the best checkpoint (step {best_step})"
          log.info(message)
          print(message, flush=True)
    if run.model.frozen_keys and primary:
      save_trainable(os.path.join(workdir, run_lib.TRAINABLE_FILE), run.model, state.params)
    monitor.write()
    if config.balancing.diagnostics and primary:
      from mtl_jax.metrics import plots  # matplotlib only where it is used
      plots.plot_balancing(os.path.join(workdir, TRAIN_LOG),
                           os.path.join(workdir, BALANCING_PLOT))
    checkpointer.wait()
    if results and primary:
      metrics_lib.write_json(results, os.path.join(workdir, METRICS_FILE))
      print(metrics_lib.format_table(results))
    for split in report_splits(run.tasks, train_cfg.eval_split):
      # Scored once, for the record (a test split): nothing is chosen on them.
      splits = {t.name: t.load(split, run.tokenizer, run.labels[t.name])
                for t in run.tasks if t.source.has_split(split)}
      split_results = evaluate_now(splits)
      if primary:
        metrics_lib.write_json(split_results, os.path.join(
            workdir, metrics_filename(split, train_cfg.eval_split)))
        print(f"{split} split:\n{metrics_lib.format_table(split_results)}")
    log.info("trained %d steps in %.1fs", total - first_step, elapsed)
    return results


class _LossMeans:
  """Each task's losses summed over the steps it took part in since the last log.

  The sums stay on device, so logging every N steps never waits for a step.
  """

  def __init__(self, num_tasks: int):
    self.num_tasks = num_tasks
    self.sums_k, self.counts_k = 0.0, np.zeros(num_tasks)

  def add(self, losses_k, present_k) -> None:
    self.sums_k = self.sums_k + jnp.where(present_k, losses_k, 0.0)
    self.counts_k += present_k

  def take(self):
    """(sums_k, counts_k) since the last take, and a fresh start."""
    taken = self.sums_k, self.counts_k
    self.sums_k, self.counts_k = 0.0, np.zeros(self.num_tasks)
    return taken


def step_shape(batch, names) -> tuple[int, int | None]:
  """What a step's program is compiled for (the loop compiles once per shape).

  Args:
    batch: a step's batch ({task: arrays}, with `TOKEN_SLOTS` or
      `TASK_TOKEN_SLOTS` where `train.token_buckets` compacts it).
    names: the run's tasks.

  Returns:
    (the step's length, its token slots or None when padded).
  """
  slots = batch.get(TOKEN_SLOTS, batch.get(TASK_TOKEN_SLOTS))
  return batch[names[0]]["input_ids"].shape[1], None if slots is None else slots.shape[0]


def _check_counts(train_cfg) -> None:
  """The `train` counts a run divides and loops by: a clear error, not a traceback later."""
  for key, least in (("steps", 1), ("batch_size", 1), ("eval_batch_size", 1),
                     ("log_every", 1), ("eval_every", 0), ("checkpoint_every", 0),
                     ("patience", 0), ("token_buckets", 0)):
    value = train_cfg[key]
    if not isinstance(value, int) or value < least:
      raise ValueError(f"train.{key} must be an integer >= {least}, got {value!r}")


def load_splits(run: run_lib.Run):
  """Tokenizes a run's train splits and its `train.eval_split`, and reports their sizes.

  Returns:
    ({task: train split}, {task: its eval split, for the tasks that have one}).

  Raises:
    ValueError: no task has a non-default `train.eval_split` (e.g. 'heldout'
      without a hold-out).
  """
  train_splits, eval_splits = {}, {}
  eval_split = run.config.train.eval_split
  for task in run.tasks:
    train_splits[task.name] = task.load("train", run.tokenizer, run.labels[task.name],
                                        raw=run.train_raw[task.name])
    if task.source.has_split(eval_split):
      eval_splits[task.name] = task.load(eval_split, run.tokenizer, run.labels[task.name])
  if eval_split != "eval" and not eval_splits:
    raise ValueError(f"train.eval_split {eval_split!r}: no task has that split (for "
                     "'heldout', set a task's source holdout, e.g. "
                     "tasks.NAME.source.holdout=0.1)")
  _report_data(train_splits, eval_splits, eval_split)
  return train_splits, eval_splits


def _layout(config: ml_collections.ConfigDict) -> sharding.Layout:
  """The mesh and its rules; the batch must split evenly over the mesh."""
  layout = sharding.Layout.from_config(config.mesh)
  sizes = {"train.batch_size": config.train.batch_size}
  sizes.update({f"tasks.{t.name}.batch_size": t.batch_size
                for t in run_lib.build_tasks(config) if t.batch_size})
  for key, size in sizes.items():
    if size % layout.batch_parallelism:
      raise ValueError(f"{key} ({size}) must be a multiple of the "
                       f"{layout.batch_parallelism} ways the mesh splits a batch "
                       f"(mesh.shape {config.mesh.shape.to_dict()})")
  if config.train.token_buckets and layout.mesh.size > 1:
    # One buffer of the whole step's real tokens: no batch axis to split.
    raise ValueError(f"train.token_buckets ({config.train.token_buckets}) needs a single "
                     f"device; this mesh has {layout.mesh.size}. Set it to 0.")
  return layout


def _prepare(config: ml_collections.ConfigDict, workdir: str, *, resuming: bool,
             primary: bool) -> run_lib.Run:
  """The run, saved to the workdir (by host 0).

  A resumed run keeps its tokenizer and must match the checkpoint's run. With
  several hosts, host 0 settles the tokenizer and the others read it: one
  trained on each host would number its vocabulary differently.
  """
  tokenizer_dir = os.path.join(workdir, run_lib.TOKENIZER_DIR)
  if resuming:
    # The workdir's own files, or (where lost) the latest checkpoint's copies.
    saved_files, tokenizer = run_lib.read_run_files(workdir)
    run = run_lib.prepare(config, tokenizer=tokenizer)
    resume.check_compatible(workdir, run, saved_files)
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


def _flat_metrics(results, tasks, best_metric: str) -> dict[str, float]:
  """{'task/metric': value}, and the main score of `tasks` (see `metrics.main`).

  Raises:
    ValueError: `best_metric` is set and is none of them.
  """
  if not results:
    return {}
  flat = {f"{task}/{name}": value for task, values in results.items()
          for name, value in values.items()}
  flat[metrics_main.MAIN_SCORE] = metrics_main.main_score(results, tasks)
  if best_metric and best_metric not in flat:
    raise ValueError(f"checkpoint.best_metric {best_metric!r} is not an eval metric; "
                     f"they are: {', '.join(sorted(flat))}")
  return flat


def _check_best_metric(best_metric: str, eval_splits, eval_every: int, patience: int) -> None:
  if patience and not (best_metric and eval_every):
    raise ValueError("train.patience (early stopping) needs checkpoint.best_metric (e.g. "
                     f"{metrics_main.MAIN_SCORE!r}) and train.eval_every > 0")
  if not best_metric:
    return
  task = best_metric.partition("/")[0]
  if best_metric != metrics_main.MAIN_SCORE and ("/" not in best_metric
                                                 or task not in eval_splits):
    raise ValueError(f"checkpoint.best_metric {best_metric!r} must be "
                     f"{metrics_main.MAIN_SCORE!r} or 'task/metric' for a task with an eval "
                     f"split: {', '.join(eval_splits) or 'none'}")
  if not eval_splits:
    raise ValueError(f"checkpoint.best_metric {best_metric!r}: no task has an eval split")
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
            nonfinite_total: int, loss_sums_k, present_counts_k) -> dict[str, Any]:
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
            "skipped": bool(values["skipped"]), "nonfinite_total": nonfinite_total}
  if "regularizer" in values:  # the task-relatedness penalty
    record["regularizer"] = _finite(values["regularizer"])
  if "grad_norms" in values:  # balancing diagnostics
    record["grad_norms"] = {n: _finite(v) for n, v in zip(names, values["grad_norms"])}
    record["grad_cosines"] = np.asarray(values["grad_cosines"], float).round(6).tolist()
  return record


class TrainLog:
  """`WORKDIR/train_log.jsonl`: a JSON line per record, appended as it is written.

  Each record opens the file by its path, appends and closes it. A log that is
  replaced while the run goes on (a `git stash` or `git checkout` of a
  committed log, a sync tool) then keeps its records: a file held open would
  have written them into the replaced, deleted file, where they are lost when
  the run ends (it happened to two runs here). Records come every
  `train.log_every` steps, so the open costs nothing. A write that fails (a
  full disk) is an OSError naming the file.
  """

  def __init__(self, path: str):
    self.path = path
    self._append("")  # an unwritable workdir fails here, before the first step

  def write(self, record: dict[str, Any]) -> None:
    self._append(json.dumps(record) + "\n")

  def _append(self, text: str) -> None:
    try:
      with open(self.path, "a") as f:
        f.write(text)
    except OSError as error:
      raise OSError(error.errno, error.strerror, self.path) from error


def _write(train_log: TrainLog | None, record: dict[str, Any], board=None) -> None:
  if board is not None:  # TensorBoard (train.tensorboard)
    board.write(record)
  if train_log is not None:
    train_log.write(record)


def _report_data(train_splits, eval_splits, eval_name: str = "eval") -> None:
  for split_name, splits in (("train", train_splits), (eval_name, eval_splits)):
    for name, split in splits.items():
      message = f"{name} {split_name}: {len(split)} examples"
      if split.num_truncated:
        message += f", {split.num_truncated} truncated to max_length"
      if split.raw.num_skipped:
        message += f", {split.raw.num_skipped} malformed rows skipped"
      log.info(message)
      if (split.num_truncated or split.raw.num_skipped) and sharding.is_primary():
        print(message)

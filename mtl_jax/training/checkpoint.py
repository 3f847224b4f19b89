"""Checkpoints of a run with orbax: the train state, its data position and config.

A checkpoint is `{"state": TrainState, "meta": {...}, "config": {...},
"run_files": {...}}` under `WORKDIR/checkpoints/<step>`; `meta` holds what is
not an array (the position of every task's data stream, the non-finite step
counts), `config` the run's config and `run_files` the workdir's other run
files (labels, encoder architecture, tokenizer), so a checkpoint stays
readable when the workdir's copies are lost. Saves are asynchronous: `save` returns once the arrays
are copied off the devices and the files are written in the background.
Orbax writes into a temporary directory and renames it when complete, so a
save that dies half-way never replaces the previous good checkpoint (its
temporary directory is ignored, and removed by the next run).

Kept: the `keep` latest checkpoints, plus the best one by an evaluation
metric when `best_metric` is set (saves then carry that step's metrics).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import traceback
from typing import Any, Iterator, Mapping

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

# The run's config in a checkpoint (the item `config`), as in the workdir.
CONFIG_FILE = "config.json"

Step = int | str | None  # a step number, 'latest', 'best' or None (= latest)


class _SavesWithoutMetrics(logging.Filter):
  """Drops orbax's note on saves without metrics while keep-best is on: periodic,
  preemption and non-finite-stop saves carry none by design (the best-N policy
  ignores them), so the note only reads as a problem."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "did not provide metrics" not in record.getMessage()


class _BackgroundSaveFailures(logging.Filter):
  """Drops orbax's tracebacks of a failed save from its background threads (three
  or more, of a hundred lines each, for one full disk): orbax raises the same
  error again in the main thread (`Checkpointer.save` or `wait`), which says it
  in one line."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not (record.exc_info and record.levelno >= logging.ERROR
                and f"{os.sep}orbax{os.sep}" in record.pathname)


class _UnretrievedWriteErrors(logging.Filter):
  """Drops asyncio's "exception was never retrieved" for orbax's writes of a failed
  save (one per array, each with its traceback): the save's error is raised."""

  def filter(self, record: logging.LogRecord) -> bool:
    if not record.exc_info or record.exc_info[1] is None:
      return True
    frames = traceback.extract_tb(record.exc_info[2]) if record.exc_info[2] else []
    return not ("orbax-checkpoint-tmp" in str(record.exc_info[1])  # a save in progress
                or any(f"{os.sep}orbax{os.sep}" in frame.filename for frame in frames))


logging.getLogger("absl").addFilter(_SavesWithoutMetrics())
logging.getLogger("absl").addFilter(_BackgroundSaveFailures())
logging.getLogger("asyncio").addFilter(_UnretrievedWriteErrors())


def is_disk_full(error: BaseException) -> bool:
  """Whether `error` (or its cause) is a full disk, as Python or tensorstore says it."""
  while error is not None:
    if getattr(error, "errno", None) == errno.ENOSPC or any(
        sign in str(error) for sign in ("No space left on device", "os_error_code='28'")):
      return True
    error = error.__cause__ or error.__context__
  return False


class Checkpointer:
  """Saves and restores train states under `directory`.

  Args:
    directory: the checkpoint folder (created on first save).
    max_to_keep: how many of the latest checkpoints to keep.
    best_metric: an eval metric name ('task/metric'); when set, the best
      checkpoint by it is kept as well.
    best_mode: 'max' or 'min': which end of `best_metric` is best.
  """

  def __init__(self, directory: str, max_to_keep: int = 2, best_metric: str = "",
               best_mode: str = "max"):
    if best_mode not in ("max", "min"):
      raise ValueError(f"checkpoint.best_mode must be 'max' or 'min', got {best_mode!r}")
    if max_to_keep < 1:
      raise ValueError(f"checkpoint.keep must be at least 1, got {max_to_keep}")
    self.directory = os.path.abspath(directory)
    self.best_metric = best_metric
    self._pending_step: int | None = None  # the step of the last save started
    self._failed = False  # a save failed and `save` or `wait` raised it
    policy = policies.LatestN(max_to_keep)
    best_fn = None
    if best_metric:
      best_fn = lambda metrics: float(metrics[best_metric])
      policy = policies.AnyPreservationPolicy([policy, policies.BestN(
          get_metric_fn=best_fn, reverse=best_mode == "min", n=1,
          keep_checkpoints_without_metrics=False)])
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            preservation_policy=policy, best_fn=best_fn, best_mode=best_mode,
            create=True, cleanup_tmp_directories=True))

  @staticmethod
  def has_checkpoints(directory: str) -> bool:
    """Whether `directory` holds a finished checkpoint, without starting a manager.

    Orbax renames a checkpoint to its step number only once it is complete;
    a half-written one keeps a temporary name.
    """
    return os.path.isdir(directory) and any(
        name.isdigit() and os.path.isdir(os.path.join(directory, name))
        for name in os.listdir(directory))

  @classmethod
  def from_config(cls, directory: str, config: Mapping[str, Any]) -> "Checkpointer":
    """From a run's `config.checkpoint` section."""
    return cls(directory, config["keep"], config["best_metric"], config["best_mode"])

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def best_step(self) -> int | None:
    """The step with the best `best_metric` among the kept checkpoints."""
    if not self.best_metric:
      raise ValueError(f"{self.directory}: no best checkpoint: this run's "
                       "checkpoint.best_metric is not set")
    return self._manager.best_step()

  def resolve(self, step: Step) -> int:
    """A step number for a step argument ('latest'/None, 'best' or a number).

    Raises:
      FileNotFoundError: no such checkpoint.
    """
    if step in (None, "latest"):
      found = self.latest_step()
    elif step == "best":
      found = self.best_step()
    else:
      found = int(step)
      if found not in self.steps():
        raise FileNotFoundError(f"{self.directory}: no checkpoint of step {found}; "
                                f"there are: {self.steps() or 'none'}")
    if found is None:
      raise FileNotFoundError(f"{self.directory}: no checkpoint to restore")
    return found

  def save(self, step: int, state: Any, meta: dict[str, Any],
           run_files: dict[str, Any] | None = None,
           metrics: dict[str, float] | None = None) -> None:
    """Starts saving (asynchronously); `wait()` blocks until it is on disk.

    Args:
      step: the checkpoint's step.
      state: the train state (arrays, possibly sharded across hosts).
      meta: JSON data (data positions, counters).
      run_files: the workdir's run files as JSON, {file name: JSON}
        (`training.run.run_files`); config.json goes to the `config` item.
      metrics: flat eval metrics {'task/metric': value}, for keep-best.
    """
    items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
    others = dict(run_files or {})
    if CONFIG_FILE in others:
      items["config"] = ocp.args.JsonSave(others.pop(CONFIG_FILE))
    if others:
      items["run_files"] = ocp.args.JsonSave(others)
    # Saving waits for the previous save, so its failure may surface here.
    with self._save_errors(self._pending_step):
      self._pending_step = step
      self._manager.save(step, args=ocp.args.Composite(**items),
                         metrics=metrics if self.best_metric else None, force=True)

  @contextlib.contextmanager
  def _save_errors(self, step: int | None) -> Iterator[None]:
    """A failed save as one line: the step, the cause, and what is kept.

    Raises:
      OSError: the save failed (errno ENOSPC where the disk is full).
    """
    try:
      yield
    except Exception as error:  # orbax and tensorstore raise many kinds
      kept = max((s for s in self.steps() if s != step), default=None)
      keeping = (f"the checkpoint of step {kept} is kept; the run resumes from it"
                 if kept is not None else "no earlier checkpoint exists")
      if is_disk_full(error):
        cause, code = "no space left on device (free some and train again)", errno.ENOSPC
      else:
        first = (str(error).strip().splitlines() or [""])[0][:300]
        cause, code = f"{type(error).__name__}: {first}", errno.EIO
      failure = OSError(f"{self.directory}: the checkpoint of step {step} could not be "
                        f"written: {cause}; {keeping}")
      failure.errno = code
      self._failed = True
      raise failure from error

  def restore(self, abstract_state: Any, step: Step = None
              ) -> tuple[Any, dict[str, Any]]:
    """Restores a checkpoint into the structure (and shardings) of `abstract_state`.

    Args:
      abstract_state: a pytree of `jax.ShapeDtypeStruct` (with the target
        shardings, e.g. from `jax.eval_shape`) or arrays, the saved state's
        structure.
      step: which checkpoint: a number, 'best', or the latest when None.

    Returns:
      (state, meta).

    Raises:
      FileNotFoundError: there is no checkpoint.
      ValueError: the checkpoint is unreadable or does not fit
        `abstract_state` (the message names it).
    """
    step = self.resolve(step)
    abstract_state = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    except Exception as error:  # orbax and tensorstore raise many kinds
      others = [s for s in self.steps() if s != step]
      earlier = (f"if it is corrupt, move it out of {self.directory} to resume from "
                 f"step {max(others)} (eval, predict and export read that one with --step "
                 f"{max(others)}); " if others else "")
      # The cause's first line only: tensorstore appends a spec dump of ~60 lines.
      cause = (str(error).strip().splitlines() or [""])[0][:300]
      raise ValueError(
          f"{self.directory}/{step}: cannot restore this checkpoint: it is corrupt or "
          f"does not match this run's model and optimizer ({type(error).__name__}: "
          f"{cause}); {earlier}to start afresh, use a new workdir") from error
    return restored["state"], restored["meta"]

  def read_run_files(self, step: int) -> dict[str, Any]:
    """A checkpoint's copies of the run files ({} for checkpoints without them).

    Returns:
      {file name: JSON}: what `save` got as `run_files`.
    """
    files = {}
    for item, unpack in (("config", lambda v: {CONFIG_FILE: v}), ("run_files", dict)):
      if not os.path.isdir(os.path.join(self.directory, str(step), item)):
        continue
      restored = self._manager.restore(step, args=ocp.args.Composite(
          **{item: ocp.args.JsonRestore()}))
      files.update(unpack(restored[item]))
    return files

  def reached_preemption(self, step: int) -> bool:
    """True at the step all hosts agreed to stop at (JAX's preemption service)."""
    return self._manager.reached_preemption(step)

  def wait(self) -> None:
    """Blocks until the last save is on disk.

    Raises:
      OSError: it failed (one line: the step, the cause, what is kept).
    """
    with self._save_errors(self._pending_step):
      self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for a save in flight and stops the manager.

    Raises:
      OSError: that save failed (not again where `save` or `wait` said so).
    """
    try:
      with self._save_errors(self._pending_step):
        self._manager.close()
    except OSError:
      if not self._failed:  # said already: the error on its way out is that one
        raise

"""TensorBoard event files of a run: `WORKDIR/tensorboard/`.

The loop hands this writer the same records it appends to `train_log.jsonl`
(a step record, or `{"step", "eval"}`); each becomes scalars:

* `loss`, `grad_norm`, `learning_rate`, `nonfinite_total`;
* `losses/<task>`, `weights/<task>` and, with `balancing.diagnostics`,
  `grad_norms/<task>` and `grad_cosines/<task_i>__<task_j>`;
* `eval/<task>/<metric>`.

Written with the `tensorboard` package's own event-file writer and protos
(no TensorFlow, no torch). A resumed run first writes a "session start" at
its step, which makes TensorBoard drop the events a crash left after that
step (they are logged again), as it does for TensorFlow's own summaries.
`tensorboard --logdir WORKDIR` shows the run; a `mtl-jax compare` folder
shows all its runs side by side.
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

TENSORBOARD_DIR = "tensorboard"


class TensorBoardWriter:
  """Scalars from train-log records to event files (see the module docstring)."""

  def __init__(self, logdir: str, start_step: int = 0):
    # Imported here: a run with `train.tensorboard=False` does not need it.
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
    self._writer = EventFileWriter(logdir)
    if start_step:
      self._writer.add_event(event_pb2.Event(
          wall_time=time.time(), step=start_step,
          session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

  def write(self, record: Mapping[str, Any]) -> None:
    """Writes a `train_log.jsonl` record's numbers as scalars at its step."""
    scalars = dict(_scalars(record))
    values = [self._summary_pb2.Summary.Value(tag=tag, simple_value=value)
              for tag, value in scalars.items()]
    if values:
      self._writer.add_event(self._event_pb2.Event(
          wall_time=time.time(), step=int(record["step"]),
          summary=self._summary_pb2.Summary(value=values)))

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()

  def __enter__(self) -> "TensorBoardWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


class _NoWriter:
  """Stands in where TensorBoard is off, or on hosts other than 0."""

  def write(self, record: Mapping[str, Any]) -> None:
    del record

  def __enter__(self) -> "_NoWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    pass


def open_writer(workdir: str, enabled: bool, primary: bool, start_step: int = 0
                ) -> TensorBoardWriter | _NoWriter:
  """The run's writer (host 0 with `train.tensorboard`), else one that writes nothing."""
  if not (enabled and primary):
    return _NoWriter()
  return TensorBoardWriter(os.path.join(workdir, TENSORBOARD_DIR), start_step)


def _scalars(record: Mapping[str, Any]):
  """(tag, value) of every finite number in a record."""
  for key in ("loss", "grad_norm", "learning_rate", "nonfinite_total", "regularizer",
              "seconds_per_step", "examples_per_second"):
    if isinstance(record.get(key), (int, float)) and not isinstance(record[key], bool):
      yield key, float(record[key])
  for key in ("losses", "weights", "grad_norms"):
    for task, value in record.get(key, {}).items():
      if value is not None:
        yield f"{key}/{task}", float(value)
  if "grad_cosines" in record:
    names = list(record["losses"])
    for i, row in enumerate(record["grad_cosines"]):
      for j in range(i + 1, len(row)):
        yield f"grad_cosines/{names[i]}__{names[j]}", float(row[j])
  for task, values in record.get("eval", {}).items():
    for metric, value in values.items():
      if value is not None:
        yield f"eval/{task}/{metric}", float(value)

"""Pre-emption: SIGTERM or SIGINT asks the loop to checkpoint and stop at the next step.

Schedulers (Cloud TPU maintenance, SLURM, Kubernetes) send SIGTERM a little
before killing a job; Ctrl-C sends SIGINT. The handler only sets a flag; the
loop checks it between steps, saves a checkpoint of the current step, waits
for it to reach the disk and raises `Interrupted`. A second signal is not
caught (the default behaviour returns), so pressing Ctrl-C twice quits
without saving.

With several processes every host must stop at the same step, so the flag
is not used there: JAX's preemption service (started by
`jax.distributed.initialize`) agrees on a step with all hosts.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Callable, Iterator

import jax

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
  """The run stopped on a signal after checkpointing; training again resumes it.

  Attributes:
    signal_number: the signal (SIGTERM, SIGINT), or 0 for a multi-host
      pre-emption notice.
    step: the step of the saved checkpoint.
  """

  def __init__(self, signal_number: int, step: int, workdir: str):
    name = signal.Signals(signal_number).name if signal_number else "pre-emption notice"
    super().__init__(f"stopped by {name} at step {step}; checkpoint saved in "
                     f"{workdir}; train again on it to resume")
    self.signal_number = signal_number
    self.step = step


class StopRequest:
  """Whether a stop was asked for; see the module docstring."""

  def __init__(self, reached_preemption: Callable[[int], bool]):
    self.signal_number = 0
    self._reached_preemption = reached_preemption

  def __call__(self, step: int) -> bool:
    """True when the run should stop before step `step` (checked every step)."""
    if jax.process_count() > 1:
      return self._reached_preemption(step)
    return bool(self.signal_number)


@contextlib.contextmanager
def stop_on_signals(reached_preemption: Callable[[int], bool]) -> Iterator[StopRequest]:
  """Catches SIGTERM/SIGINT while the block runs (main thread only).

  Args:
    reached_preemption: the multi-host check (`Checkpointer.reached_preemption`).

  Yields:
    A `StopRequest` to call between steps.
  """
  request = StopRequest(reached_preemption)
  if threading.current_thread() is not threading.main_thread():
    yield request  # signal handlers can only be set from the main thread
    return
  previous = {number: signal.getsignal(number) for number in SIGNALS}

  def restore_handlers():
    for number, handler in previous.items():
      signal.signal(number, handler)

  def handle(number, frame):
    del frame
    log.warning("%s: checkpointing and stopping after this step (again to quit now)",
                signal.Signals(number).name)
    request.signal_number = number
    restore_handlers()

  for number in SIGNALS:
    signal.signal(number, handle)
  try:
    yield request
  finally:
    restore_handlers()

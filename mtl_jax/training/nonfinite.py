"""Non-finite steps: skip the update on device, count on the host, stop after a streak.

`skip_nonfinite(train_step)` wraps any train step: when the step's loss or
gradient norm is NaN or infinite it keeps the whole previous state (params,
optimizer and balancing state) and only advances the step counter, so the
next step draws fresh data and dropout. The metrics gain `skipped` (0 or 1).
`NonFiniteCounter` counts the skipped steps on the host and stops the run
after `limit` in a row.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable

import jax
import jax.numpy as jnp

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
  """Too many steps in a row had a non-finite loss or gradient."""


def skip_nonfinite(train_step: Callable) -> Callable:
  """`train_step(state, batch, rng) -> (state, metrics)` that skips non-finite updates.

  Args:
    train_step: a train step whose metrics hold `loss` and `grad_norm`.

  Returns:
    The same step, keeping the old state (but the new step count) when
    either is not finite; metrics gain `skipped`.
  """

  def guarded_step(state, batch, rng):
    new_state, metrics = train_step(state, batch, rng)
    finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
    kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    return (kept.replace(step=new_state.step),
            {**metrics, "skipped": jnp.logical_not(finite).astype(jnp.int32)})

  return guarded_step


@dataclasses.dataclass
class NonFiniteCounter:
  """Host-side count of skipped steps (saved in checkpoints, so a resume continues it).

  Attributes:
    limit: how many skipped steps in a row stop the run (0: never stop).
    total: skipped steps in the whole run.
    in_a_row: skipped steps since the last good one.
  """

  limit: int
  total: int = 0
  in_a_row: int = 0

  def record(self, step: int, skipped: bool) -> None:
    """Counts step `step` (1-based, as logged).

    Raises:
      NonFiniteLossError: `limit` steps in a row were skipped.
    """
    if not skipped:
      self.in_a_row = 0
      return
    self.total += 1
    self.in_a_row += 1
    log.warning("step %d: non-finite loss or gradient; update skipped (%d in a row, "
                "%d in all)", step, self.in_a_row, self.total)
    if self.limit and self.in_a_row >= self.limit:
      raise NonFiniteLossError(
          f"steps {step - self.in_a_row + 1}-{step}: {self.in_a_row} steps in a row had "
          f"a non-finite loss or gradient and were skipped ({self.total} in all); "
          "stopping. Lower the learning rate, check the data, or raise "
          "train.max_nonfinite_in_a_row.")

  def to_json(self) -> dict[str, int]:
    return {"total": self.total, "in_a_row": self.in_a_row}

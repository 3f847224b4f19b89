"""Non-finite steps: skip the update and count it on device, stop after a streak.

A non-finite step keeps the whole previous state (params, optimizer and
balancing state) and only advances the step counter, so the next step draws
fresh data and dropout; its metrics say `skipped` (0 or 1). `make_train_step`
builds that into its step (the update in a `lax.cond`, in place);
`skip_nonfinite(train_step)` gives any other train step the same behaviour.
The loop counts the skipped steps on device (`advance`, inside its jitted
step) and `NonFiniteCounter` reads them only when the loop logs, evaluates,
checkpoints or stops, raising after `limit` in a row: no host sync per step.
"""

from __future__ import annotations

import logging
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
  """Too many steps in a row had a non-finite loss or gradient."""


def skip_nonfinite(train_step: Callable) -> Callable:
  """`train_step(state, batch, rng) -> (state, metrics)` that skips non-finite updates.

  Args:
    train_step: a train step whose metrics hold `loss` and `grad_norm`.

  Returns:
    The same step, keeping the old state (but the new step count) when
    either is not finite; metrics gain `skipped`. A step that reports
    `skipped` itself (`make_train_step`'s) is returned as it is.
  """

  def guarded_step(state, batch, rng):
    new_state, metrics = train_step(state, batch, rng)
    if "skipped" in metrics:  # it guards itself, in place
      return new_state, metrics
    finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
    kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    return (kept.replace(step=new_state.step),
            {**metrics, "skipped": jnp.logical_not(finite).astype(jnp.int32)})

  return guarded_step


class StreakCounts(NamedTuple):
  """The skipped-step counts, on device (int32 scalars), advanced by the loop step.

  Attributes:
    total: skipped steps in the whole run.
    in_a_row: skipped steps since the last good one.
    stopped_at: the step (1-based) at which `in_a_row` reached the limit, 0
      while it has not; from then on the counts stay as they were at that step.
    last_skipped: the last skipped step (1-based), 0 if none.
  """

  total: jax.Array
  in_a_row: jax.Array
  stopped_at: jax.Array
  last_skipped: jax.Array


def advance(counts: StreakCounts, skipped: jax.Array, done: jax.Array, limit: int
            ) -> StreakCounts:
  """The counts after step `done` (1-based), pure and jittable.

  Args:
    counts: the counts before the step.
    skipped: whether the step was skipped (int or bool []).
    done: the step's 1-based index.
    limit: how many skipped steps in a row stop the run (0: never).

  Returns:
    The new counts; once `stopped_at` is set they no longer change, so the
    host reads the streak that stopped the run however late it looks.
  """
  skipped = jnp.asarray(skipped).astype(bool)
  in_a_row = jnp.where(skipped, counts.in_a_row + 1, 0)
  new = StreakCounts(
      total=counts.total + skipped.astype(jnp.int32),
      in_a_row=in_a_row,
      stopped_at=jnp.where((limit > 0) & (in_a_row >= limit), done, 0).astype(jnp.int32),
      last_skipped=jnp.where(skipped, done, counts.last_skipped).astype(jnp.int32))
  frozen = counts.stopped_at > 0
  return jax.tree.map(lambda old, fresh: jnp.where(frozen, old, fresh), counts, new)


class NonFiniteCounter:
  """Skipped steps counted on device, read by the host only when it asks.

  The loop step advances `counts` (`advance`) inside its one jitted call, so
  counting costs the host nothing; `check` (at logs, evaluations,
  checkpoints, stops and the end) reads them, warns about the steps skipped
  since the last check and raises once a streak reached the limit. The
  counts are saved in checkpoints, so a resume continues them.

  Attributes:
    limit: how many skipped steps in a row stop the run (0: never stop).
    counts: the device counts (`StreakCounts`), replaced by the loop each step.
  """

  def __init__(self, limit: int, total: int = 0, in_a_row: int = 0, *, put=None):
    """Starts counting, or continues a resumed run's counts.

    Args:
      limit: stop after this many non-finite steps in a row (0: never stop).
      total: skipped steps so far (a resumed run's, from its checkpoint meta).
      in_a_row: the current streak of skipped steps (likewise).
      put: host counts -> device counts (e.g. replicated on the mesh);
        default `jnp.asarray`.
    """
    self.limit = limit
    host = StreakCounts(*(np.int32(v) for v in (total, in_a_row, 0, 0)))
    self.counts = (put or (lambda tree: jax.tree.map(jnp.asarray, tree)))(host)
    self._reported = total  # skipped steps already warned about

  def check(self) -> StreakCounts:
    """Reads the counts (a host sync), warns about new skipped steps.

    Returns:
      The counts as host ints.

    Raises:
      NonFiniteLossError: a streak reached `limit` (naming its steps).
    """
    counts = StreakCounts(*(int(v) for v in jax.device_get(tuple(self.counts))))
    if counts.total > self._reported:
      log.warning("%d more step(s) had a non-finite loss or gradient and were skipped "
                  "(the last at step %d; %d in a row, %d in all)",
                  counts.total - self._reported, counts.last_skipped, counts.in_a_row,
                  counts.total)
      self._reported = counts.total
    if counts.stopped_at:
      first = counts.stopped_at - counts.in_a_row + 1
      raise NonFiniteLossError(
          f"steps {first}-{counts.stopped_at}: {counts.in_a_row} steps in a row had "
          f"a non-finite loss or gradient and were skipped ({counts.total} in all); "
          "stopping. Lower the learning rate, check the data, or raise "
          "train.max_nonfinite_in_a_row.")
    return counts

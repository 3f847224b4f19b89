"""Measuring relatedness during training: probe batches, one jitted function, the log.

The measurements use their own "probe" streams of training batches (every
task in every probe batch, whatever the run's schedule, so every pair of
tasks is measured), seeded apart from the training streams so they do not
change what the run trains on. Their positions go into the checkpoint
metadata, so a resumed run measures on the batches the uninterrupted one
would have.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import numpy as np

from mtl_jax.relatedness.measure import make_measure_fn
from mtl_jax.relatedness.regularizer import RelatednessRegularizer
from mtl_jax.relatedness.report import RelatednessLog
from mtl_jax.tasks.batching import StreamPosition, TaskStream, joint_batches, stream_seed

# Keeps the probe streams' seeds apart from the training streams'.
_PROBE_SALT = 7919


class RelatednessMonitor:
  """Measures every `measure_every` steps; `write()` saves the JSON and heat map.

  Args:
    model: the run's model (`task_names`, `encode`).
    losses_fn: `(params, batch) -> [k]` task losses without dropout.
    splits: task -> encoded train split.
    batch_size, buckets: as the training batches.
    seed: the run's seed.
    config: the `relatedness` config section.
    regularizer: the run's relatedness regulariser (its R is reported), or None.
    workdir: where `relatedness.json` and `relatedness.png` go.
    first_step: the step the run starts (or resumes) at.
    positions: saved probe-stream positions (a resumed run), or None.
    put: puts a host batch where the params are (e.g. `Layout.put_batch` to
      split it over the run's mesh); default `jax.device_put`.
    write: whether this process writes the files (the primary host).
  """

  def __init__(self, model, losses_fn: Callable, splits: Mapping[str, Any],
               batch_size: int, buckets, seed: int, config: Mapping[str, Any],
               regularizer: RelatednessRegularizer | None, workdir: str,
               first_step: int = 0, positions: Mapping[str, dict] | None = None, *,
               put: Callable[[Any], Any] = jax.device_put, write: bool = True):
    self.every = int(config["measure_every"])
    if self.every < 0:
      raise ValueError(f"relatedness.measure_every must be >= 0, got {self.every}")
    self.lookahead_lr = np.float32(config["lookahead_lr"])
    if self.every and not self.lookahead_lr > 0:
      raise ValueError(f"relatedness.lookahead_lr must be > 0, got {self.lookahead_lr}")
    self.workdir = workdir
    self._put = put
    self._write = write
    names = tuple(model.task_names)
    positions = positions or {}
    self.streams = {
        name: TaskStream(splits[name], batch_size, buckets,
                         stream_seed(seed, name) + _PROBE_SALT,
                         StreamPosition(**positions[name]) if name in positions else None)
        for name in names}
    self._batches = joint_batches(self.streams)
    self._measure = jax.jit(make_measure_fn(losses_fn))
    self._relatedness = None
    if regularizer is not None:
      ones_k = np.ones(len(names), np.float32)
      self._relatedness = jax.jit(lambda params, batch: regularizer.relatedness(
          model.encode(params, batch, train=False), batch, ones_k))
    self.log = (RelatednessLog.load(workdir, names, first_step) if self.every
                else RelatednessLog(names))

  @property
  def enabled(self) -> bool:
    return self.every > 0

  def positions(self) -> dict[str, dict[str, int]]:
    """The probe streams' positions, for the checkpoint metadata."""
    return {name: dict(vars(stream.position)) for name, stream in self.streams.items()}

  def maybe_measure(self, step: int, params) -> None:
    """Measures at `params` (the state after `step` steps) when `step` is due."""
    if not self.every or step % self.every:
      return
    batch = self._put(next(self._batches))
    values = jax.device_get(self._measure(params, batch, self.lookahead_lr))
    self.log.add(step, values)
    if self._relatedness is not None:
      self.log.regularizer_relatedness = np.asarray(
          jax.device_get(self._relatedness(params, batch)))
    if self._write:
      self.log.write(self.workdir, plot=False)

  def write(self) -> None:
    """The JSON and the heat map (at the end of the run)."""
    if self._write and self.every and self.log.measurements:
      self.log.write(self.workdir, plot=True)

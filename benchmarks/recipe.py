"""A config's recipe as the loop runs it: its batch order and its step, for the benchmarks.

`padding.py` counts the recipe's batches; `token_compaction.py` and
`compile_cache.py` run the loop's own step on them. Both read them from here,
so that what a benchmark measures is what `training/loop.py` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator


def recipe_batches(config):
  """A config's run and its steps' batches in the recipe's own order (seed, streams, schedule).

  Returns:
    (run, an endless iterator of step batches {task: arrays}, as the loop's
    `scheduled_batches` gives them).
  """
  from mtl_jax.training import loop, schedules
  from mtl_jax.training import run as run_lib

  run = run_lib.prepare(config)
  train_splits, _ = loop.load_splits(run)
  names = [task.name for task in run.tasks]
  sizes = {t.name: t.batch_size or config.train.batch_size for t in run.tasks}
  streams = loop.make_streams(train_splits, sizes, config.train.buckets, config.seed)
  schedule = schedules.make_schedule(config.schedule, names,
                                     {n: len(s) for n, s in train_splits.items()},
                                     config.seed, rates=run.rates)
  return run, schedules.scheduled_batches(streams, schedule)


@dataclasses.dataclass
class RecipeStep:
  """The loop's step for a recipe, built inside its mesh layout.

  Attributes:
    run: the prepared run (`run.prepare`).
    batches: the recipe's step batches, endless (`recipe_batches`).
    names: the tasks, in the run's order.
    layout: the mesh layout the step runs in (active while the context is).
    trainer: the run's trainer.
    each_task: whether a step encodes each task apart (its capacity is per task).
    loop_step: `trainer.jit_loop_step()`: (state, counts, batch) -> (state, counts, metrics).
    counts: the non-finite counts a fresh run starts from, on device.
  """
  run: Any
  batches: Iterator
  names: list
  layout: Any
  trainer: Any
  each_task: bool
  loop_step: Any
  counts: Any


@contextlib.contextmanager
def recipe_step(config):
  """Builds the loop's step for `config` and keeps its mesh layout active while in use.

  Args:
    config: a loaded config (overrides applied).

  Yields:
    A `RecipeStep`.
  """
  from mtl_jax import sharding
  from mtl_jax.training import run as run_lib
  from mtl_jax.training.nonfinite import NonFiniteCounter

  run, batches = recipe_batches(config)
  layout = sharding.Layout.from_config(config.mesh)
  with layout.activate():
    trainer = run_lib.make_trainer(run, layout)
    yield RecipeStep(
        run=run, batches=batches, names=[task.name for task in run.tasks], layout=layout,
        trainer=trainer,
        # A step with per-task gradients compacts each task's pass, as the loop does.
        each_task=run_lib.encodes_each_task_apart(config, run.model, trainer.weighting),
        loop_step=trainer.jit_loop_step(),
        counts=NonFiniteCounter(0, put=layout.put_replicated).counts)

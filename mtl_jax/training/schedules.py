"""Task schedules: which tasks take part in each step, and with what weight.

A schedule is a pure function of (seed, step) -> `StepPlan` (a presence
mask and a weight per task), so a resumed run replays exactly the steps the
uninterrupted run would have taken. It is chosen by `config.schedule`, a
string like the balancing methods':

* `joint`: every task in every step (the default).
* `alternating`: one task per step, round robin in the run's task order.
* `proportional(rates=None)`: one task per step, drawn with probability
  proportional to its rate: `rates={task: r}`, else the run's mixture rates
  (`config.mixture`, `Run.rates`), else its train split's size.
* `temperature(temperature=2.0, rates=None)`: one task per step, drawn with
  probability proportional to `rate_i ** (1 / T)` (T = 1 is proportional,
  large T tends to uniform); rates as `proportional`'s.
* `progressive(main_task=..., start_steps={task: step} or one step)`: the
  main task alone first, each auxiliary task joining (for good) at its start
  step.

Every kind also takes `weights={task: w}`: a constant multiplier of the
task's loss, or a list of `(step, w)` points interpolated linearly (constant
outside them), e.g. `weights={"ner": [(0, 0.1), (1000, 1.0)]}`.

Every schedule runs under one compiled train step: each step's batch holds
every task, with the scalars `task_present` (0 or 1) and `task_weight`, which
the step multiplies into the task's loss weight. An absent task gets a zero
batch of the step's shape (all rows padding, so its loss is 0) and its data
stream does not move: it sees its examples in the same order whatever the
schedule, and no data is drawn only to be discarded. The absent task's rows
still pass through the encoder (the price of one program for all
schedules), so a one-task-per-step schedule costs about as much per step as
a joint one.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from mtl_jax.tasks.batching import TaskStream, pad_to_length
from mtl_jax.specs import parse_spec

KINDS = ("joint", "alternating", "proportional", "temperature", "progressive")


@dataclasses.dataclass(frozen=True)
class StepPlan:
  """One step of a schedule.

  Attributes:
    present_k: [k] bool, the tasks that take part in the step.
    weights_k: [k] float32, the schedule's multiplier of each task's loss
      (1 unless `weights=` says otherwise).
  """

  present_k: np.ndarray
  weights_k: np.ndarray


@dataclasses.dataclass(frozen=True)
class TaskSchedule:
  """A schedule over the run's tasks; `schedule(step) -> StepPlan`.

  Build one with `make_schedule`. Attributes:
    kind: one of `KINDS`.
    task_names: the run's tasks, in order (k).
    seed: seeds the sampled kinds (with the step).
    probabilities_k: sampled kinds: each task's probability of being drawn.
    start_steps_k: progressive: the step each task joins (main task: 0).
    weight_points: per task, (steps, weights) arrays to interpolate, or None.
  """

  kind: str
  task_names: tuple[str, ...]
  seed: int = 0
  probabilities_k: np.ndarray | None = None
  start_steps_k: np.ndarray | None = None
  weight_points: tuple[tuple[np.ndarray, np.ndarray] | None, ...] = ()

  def present(self, step: int) -> np.ndarray:
    """[k] bool: the tasks of step `step`."""
    k = len(self.task_names)
    if self.kind == "joint":
      return np.ones(k, bool)
    if self.kind == "alternating":
      return np.arange(k) == step % k
    if self.kind == "progressive":
      return self.start_steps_k <= step
    # Sampled kinds: a generator seeded by (seed, step), so any step's draw
    # is known without replaying the ones before it.
    rng = np.random.default_rng([self.seed, step])
    return np.arange(k) == rng.choice(k, p=self.probabilities_k)

  def weights(self, step: int) -> np.ndarray:
    """[k] float32: the schedule's loss multipliers at step `step`."""
    weights_k = np.ones(len(self.task_names), np.float32)
    for k, points in enumerate(self.weight_points):
      if points is not None:
        weights_k[k] = np.interp(step, *points)
    return weights_k

  def __call__(self, step: int) -> StepPlan:
    return StepPlan(self.present(step), self.weights(step))


def make_schedule(spec: str, task_names: Sequence[str], sizes: Mapping[str, int],
                  seed: int = 0, rates: Mapping[str, float] | None = None) -> TaskSchedule:
  """Builds the schedule a config names.

  Args:
    spec: e.g. 'joint', 'temperature(temperature=2)',
      "progressive(main_task='ner', start_steps={'news': 500})" (see the
      module docstring).
    task_names: the run's tasks, in order.
    sizes: task -> number of train examples (the sampled kinds' default rates).
    seed: the run's seed.
    rates: task -> rate, the sampled kinds' default rates instead of `sizes`
      (a mixture's), or None.

  Raises:
    ValueError: an unknown kind, argument or task name, or a bad value.
  """
  kind, kwargs = parse_spec(spec, what="schedule")
  names = tuple(task_names)
  arguments = {"joint": (), "alternating": (), "proportional": ("rates",),
               "temperature": ("temperature", "rates"),
               "progressive": ("main_task", "start_steps")}
  if kind not in arguments:
    raise ValueError(f"unknown schedule {kind!r}; known: {', '.join(KINDS)}")
  for key in kwargs:
    if key not in arguments[kind] + ("weights",):
      raise ValueError(f"schedule {kind!r} has no argument {key!r}; its arguments: "
                       f"{', '.join(arguments[kind] + ('weights',))}")
  schedule = TaskSchedule(kind, names, seed,
                          weight_points=_weight_points(kwargs.get("weights"), names))
  if kind in ("proportional", "temperature"):
    temperature = float(kwargs.get("temperature", 2.0 if kind == "temperature" else 1.0))
    rates = kwargs.get("rates") or rates or {n: sizes[n] for n in names}
    schedule = dataclasses.replace(
        schedule, probabilities_k=sampling_probabilities(rates, names, temperature))
  elif kind == "progressive":
    schedule = dataclasses.replace(schedule, start_steps_k=_start_steps(
        kwargs.get("main_task"), kwargs.get("start_steps"), names))
  return schedule


def sampling_probabilities(rates: Mapping[str, float], task_names: Sequence[str],
                           temperature: float = 1.0) -> np.ndarray:
  """[k] probabilities proportional to `rate_i ** (1 / temperature)`.

  Args:
    rates: task -> a positive rate (e.g. its number of train examples).
    task_names: the run's tasks, in order; each needs a rate.
    temperature: > 0; 1 keeps the rates' proportions, larger flattens them.
  """
  _check_tasks("rates", rates, task_names, every=True)
  if not temperature > 0:
    raise ValueError(f"schedule temperature must be > 0, got {temperature}")
  rates_k = np.asarray([float(rates[n]) for n in task_names], np.float64)
  if not (np.isfinite(rates_k).all() and (rates_k > 0).all()):
    raise ValueError(f"schedule rates must be positive and finite, got {dict(rates)}")
  # In log space, so large sizes and temperatures near 0 do not overflow.
  logits_k = np.log(rates_k) / temperature
  probabilities_k = np.exp(logits_k - logits_k.max())
  return probabilities_k / probabilities_k.sum()


def _start_steps(main_task: str | None, start_steps: Any,
                 task_names: Sequence[str]) -> np.ndarray:
  if main_task not in task_names:
    raise ValueError(f"schedule progressive: main_task must be one of the run's tasks "
                     f"{list(task_names)}, got {main_task!r}")
  auxiliary = [n for n in task_names if n != main_task]
  if isinstance(start_steps, (int, float)) and not isinstance(start_steps, bool):
    start_steps = {n: start_steps for n in auxiliary}
  if not isinstance(start_steps, Mapping):
    raise ValueError("schedule progressive: start_steps must be a step or "
                     f"{{task: step}} for the auxiliary tasks {auxiliary}")
  _check_tasks("start_steps", start_steps, auxiliary, every=True)
  return np.asarray([0 if n == main_task else int(start_steps[n]) for n in task_names])


def _weight_points(weights: Mapping[str, Any] | None, task_names: Sequence[str]
                   ) -> tuple[tuple[np.ndarray, np.ndarray] | None, ...]:
  weights = weights or {}
  _check_tasks("weights", weights, task_names, every=False)
  points = []
  for name in task_names:
    value = weights.get(name)
    if value is None:
      points.append(None)
      continue
    pairs = [(0.0, float(value))] if np.isscalar(value) else [tuple(p) for p in value]
    if not pairs or any(len(p) != 2 for p in pairs):
      raise ValueError(f"schedule weights[{name!r}] must be a number or a list of "
                       f"(step, weight) pairs, got {value!r}")
    steps, values = np.asarray(pairs, np.float64).T
    if (np.diff(steps) <= 0).any():
      raise ValueError(f"schedule weights[{name!r}]: steps must increase, got {value!r}")
    points.append((steps, values))
  return tuple(points)


def _check_tasks(what: str, given: Mapping[str, Any], task_names: Sequence[str],
                 every: bool) -> None:
  unknown = sorted(set(given) - set(task_names))
  missing = [n for n in task_names if n not in given] if every else []
  if unknown or missing:
    raise ValueError(f"schedule {what}: unknown tasks {unknown}, missing tasks "
                     f"{missing}; expected {list(task_names)}")


def scheduled_batches(streams: Mapping[str, TaskStream], schedule: TaskSchedule,
                      first_step: int = 0) -> Iterator[dict[str, dict[str, np.ndarray]]]:
  """The batches of steps `first_step, first_step + 1, ...` under `schedule`.

  Each batch holds every task, padded to one common bucket length (the
  longest of the present tasks' batches), with `task_present` and
  `task_weight` float32 scalars; absent tasks get a zero batch and their
  stream stays where it is (see the module docstring).
  """
  for step in itertools.count(first_step):
    plan = schedule(step)
    drawn = {name: next(streams[name])
             for name, present in zip(schedule.task_names, plan.present_k) if present}
    length = max(b["input_ids"].shape[1] for b in drawn.values())
    batch = {}
    for name, present, weight in zip(schedule.task_names, plan.present_k, plan.weights_k):
      task_batch = (pad_to_length(drawn[name], length, streams[name].split.token_labels)
                    if present else streams[name].empty_batch(length))
      # float32 scalars every step: one pytree structure and dtype, one program.
      task_batch["task_present"] = np.float32(present)
      task_batch["task_weight"] = np.float32(weight)
      batch[name] = task_batch
    yield batch

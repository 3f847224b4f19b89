"""Mixtures: a named set of tasks with per-task sampling rates (seqio's Mixture).

    MixtureRegistry.register("news_ner", lambda data_dir: Mixture(
        "news_ner",
        tasks={"ag_news": {"data_dir": f"{data_dir}/ag_news"},
               "conll2003_ner": {"data_dir": f"{data_dir}/conll2003"}},
        rates={"ag_news": 2.0, "conll2003_ner": 1.0}))

A config names one, with the factory's arguments, in `config.mixture`
(`"glue_small(data_dir='/data/glue')"`, or `--set mixture=...` on the
command line); its tasks join `config.tasks` (whose entries add options to
them, or add tasks). A rate is a number, 'examples' (proportional to the
task's train examples, seqio's `mixing_rate_num_examples`) or any function
of the number of train examples (`rate_num_examples(maximum, temperature)`).
The run resolves the rates once its train splits are read (`Run.rates`,
summing to 1); how a schedule samples tasks by them is the training loop's
business.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

from mtl_jax.registry import Registry
from mtl_jax.specs import parse_spec

Rate = float | str | Callable[[int], float]
# The rate of a task in `config.tasks` that is not in the mixture.
DEFAULT_RATE = 1.0


def rate_num_examples(maximum: int | None = None, scale: float = 1.0,
                      temperature: float = 1.0) -> Callable[[int], float]:
  """A rate proportional to a task's train examples, as seqio's.

  Args:
    maximum: count at most this many examples (so a huge task does not
      crowd out the rest).
    scale: multiplies the count.
    temperature: the rate is count ** (1 / temperature); higher flattens the
      mixture towards equal rates.

  Returns:
    `rate(num_examples) -> float`.
  """
  if temperature <= 0:
    raise ValueError(f"temperature must be positive, got {temperature}")

  def rate(num_examples: int) -> float:
    count = min(num_examples, maximum) if maximum is not None else num_examples
    return (scale * count) ** (1.0 / temperature)

  return rate


@dataclasses.dataclass(frozen=True)
class Mixture:
  """A named set of tasks and their sampling rates.

  Attributes:
    name: the mixture's name.
    tasks: task name -> its config entry: a registered task's options
      ({'data_dir': ...}) or a custom task ({'kind': ..., 'source': ...}).
    rates: task name -> rate (a number, 'examples', or a function of the
      number of train examples); tasks left out get 'examples' when
      `default_rate` is that, else `default_rate`.
    default_rate: the rate of tasks missing from `rates`.
  """

  name: str
  tasks: Mapping[str, Mapping[str, Any]]
  rates: Mapping[str, Rate] = dataclasses.field(default_factory=dict)
  default_rate: Rate = DEFAULT_RATE

  def __post_init__(self):
    if not self.tasks:
      raise ValueError(f"mixture {self.name!r} has no tasks")
    unknown = sorted(set(self.rates) - set(self.tasks))
    if unknown:
      raise ValueError(f"mixture {self.name!r}: rates for tasks it does not have: "
                       f"{unknown}")
    for task in self.tasks:
      _check_rate(self.name, task, self.rate(task))

  def rate(self, task: str) -> Rate:
    return self.rates.get(task, self.default_rate)


def _check_rate(mixture: str, task: str, rate: Rate) -> None:
  if callable(rate) or rate == "examples":
    return
  if isinstance(rate, str) or not (isinstance(rate, (int, float)) and rate > 0
                                   and math.isfinite(rate)):
    raise ValueError(f"mixture {mixture!r}: task {task}'s rate must be a positive "
                     f"number, 'examples' or a function of the example count; got "
                     f"{rate!r}")


def resolve_rates(rates: Mapping[str, Rate], num_examples: Mapping[str, int]
                  ) -> dict[str, float]:
  """Rates as numbers summing to 1.

  Args:
    rates: task -> rate (a number, 'examples', or a function of the count).
    num_examples: task -> train examples.

  Returns:
    task -> the task's share of the mixture.
  """
  values = {}
  for task, rate in rates.items():
    if rate == "examples":
      rate = rate_num_examples()
    values[task] = float(rate(num_examples[task]) if callable(rate) else rate)
  total = sum(values.values())
  if not total > 0:
    raise ValueError(f"the mixture's rates sum to {total}: {values}")
  return {task: value / total for task, value in values.items()}


# Named mixture factories: `MixtureRegistry.get('glue_small', data_dir=...)`.
MixtureRegistry: Registry[Callable[..., Mixture]] = Registry("mixture")


def mixture_from_spec(spec: str) -> Mixture:
  """A registered mixture from its config string: 'name' or 'name(key=value, ...)'.

  Raises:
    ValueError: a malformed string, an unknown mixture or a wrong option.
  """
  name, options = parse_spec(spec, what="config.mixture")
  try:
    return MixtureRegistry.get(name, **options)
  except TypeError as error:
    raise ValueError(f"config.mixture {spec!r}: {error}") from None


def task_specs(mixture_spec: str, tasks: Mapping[str, Mapping[str, Any]]
               ) -> dict[str, dict[str, Any]]:
  """A run's task entries: the mixture's, then `tasks` (adding options or tasks).

  Args:
    mixture_spec: `config.mixture` ('' for none).
    tasks: `config.tasks` (name -> entry).

  Returns:
    name -> entry, for `task_from_config`.
  """
  specs: dict[str, dict[str, Any]] = {}
  if mixture_spec:
    mixture = mixture_from_spec(mixture_spec)
    specs = {name: dict(spec) for name, spec in mixture.tasks.items()}
  for name, spec in tasks.items():
    specs[name] = {**specs.get(name, {}), **dict(spec)}
  return specs


def task_rates(mixture_spec: str, task_names, num_examples: Mapping[str, int]
               ) -> dict[str, float] | None:
  """The run's resolved rates (None without a mixture).

  Tasks of `config.tasks` outside the mixture get its `default_rate`.
  """
  if not mixture_spec:
    return None
  mixture = mixture_from_spec(mixture_spec)
  return resolve_rates({name: mixture.rate(name) for name in task_names}, num_examples)

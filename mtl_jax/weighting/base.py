"""The balancing contracts and their registry.

Two kinds of method, each a pair of pure functions with an explicit state
(a pytree that lives in the train state, so it is jitted, sharded and
checkpointed with everything else), as optax's `GradientTransformation`:

* `LossWeighting`: `init(num_tasks) -> state`;
  `update(losses_k, state, **extras) -> (weights_k, state)`.
  The step minimises `sum_k weights_k * losses_k` (weights are not
  differentiated).
* `GradientAggregation`: `init(num_tasks) -> state`;
  `update(grads_k, state, **extras) -> (grads, state)`, where every leaf of
  `grads_k` has a leading task axis k.

Methods register under a name; `from_spec("static(weights=[1, 0.5])")`
builds one from the string a config holds.
"""

from __future__ import annotations

import ast
import difflib
import inspect
from typing import Any, Callable, NamedTuple, Protocol

import jax


class WeightingUpdateFn(Protocol):

  def __call__(self, losses_k: jax.Array, state: Any, **extras
               ) -> tuple[jax.Array, Any]:
    """Maps per-task losses (and the state) to per-task weights."""


class LossWeighting(NamedTuple):
  """A loss-weighting method: pure `init` and `update` (see module docstring)."""

  init: Callable[[int], Any]
  update: WeightingUpdateFn


class AggregationUpdateFn(Protocol):

  def __call__(self, grads_k: Any, state: Any, **extras) -> tuple[Any, Any]:
    """Maps per-task gradients (leading axis k) to one update direction."""


class GradientAggregation(NamedTuple):
  """A gradient-aggregation method: pure `init` and `update`."""

  init: Callable[[int], Any]
  update: AggregationUpdateFn


class EmptyState(NamedTuple):
  """The state of a stateless method."""


_REGISTRY: dict[str, Callable[..., LossWeighting | GradientAggregation]] = {}


def register(name: str):
  """Decorator: registers a method factory under `name`."""

  def decorator(factory):
    if name in _REGISTRY:
      raise ValueError(f"balancing method {name!r} is already registered")
    _REGISTRY[name] = factory
    return factory

  return decorator


def names() -> list[str]:
  return sorted(_REGISTRY)


def parse_spec(spec: str, what: str = "balancing method") -> tuple[str, dict[str, Any]]:
  """Splits 'name(key=value, ...)' into the name and literal keyword arguments.

  `what` names the config value in error messages (e.g. 'schedule').
  """
  try:
    call = ast.parse(spec.strip(), mode="eval").body
  except SyntaxError as error:
    raise ValueError(f"cannot parse {what} {spec!r}: {error.msg}") from None
  if isinstance(call, ast.Name):
    return call.id, {}
  if (not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name)
      or call.args):
    raise ValueError(f"{what} {spec!r} must look like "
                     "'name' or 'name(key=value, ...)'")
  try:
    kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
  except ValueError:
    raise ValueError(f"{what} {spec!r}: arguments must be literals") from None
  return call.func.id, kwargs


def from_spec(spec: str, **context) -> LossWeighting | GradientAggregation:
  """Builds a registered method from its config string.

  Args:
    spec: e.g. 'equal' or 'static(weights=[1.0, 0.5])'.
    **context: run facts a factory may take (e.g. `num_tasks`,
      `task_names`); passed only to factories that declare them.

  Returns:
    The method.

  Raises:
    ValueError: unknown method or argument (named, with the closest match).
  """
  name, kwargs = parse_spec(spec)
  if name not in _REGISTRY:
    close = difflib.get_close_matches(name, _REGISTRY, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown balancing method {name!r}{hint}; known: "
                     f"{', '.join(names())}")
  factory = _REGISTRY[name]
  parameters = inspect.signature(factory).parameters
  for key in kwargs:
    if key not in parameters or key in context:
      known = [p for p in parameters if p not in context]
      raise ValueError(f"balancing method {name!r} has no argument {key!r}; "
                       f"its arguments: {', '.join(known) or 'none'}")
  kwargs.update({k: v for k, v in context.items() if k in parameters})
  return factory(**kwargs)

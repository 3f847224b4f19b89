"""The balancing contracts and their registry.

Two kinds of method, each a pair of pure functions with an explicit state
(a pytree that lives in the train state, so it is jitted, sharded and
checkpointed with everything else), as optax's `GradientTransformation`:

* `LossWeighting`: `init(num_tasks) -> state`;
  `update(losses_k, state, **extras) -> (weights_k, state)`.
  The step minimises `sum_k weights_k * losses_k` (weights are not
  differentiated). Methods that learn from gradient norms (GradNorm) also
  have `observe(grad_norms_k, state, **extras) -> state`, called after the
  step's backward pass with the norms of that step's per-task gradients.
* `GradientAggregation`: `init(num_tasks) -> state`;
  `update(grads_k, state, **extras) -> (update, state)`, where every leaf of
  `grads_k` has a leading task axis k (per-task gradients of the shared
  parameters) and `update` has the structure of one task's gradient.
  Methods whose update is a combination `sum_k c_k grads_k[k]` with
  coefficients that depend only on the Gram matrix of the task gradients
  (every method here but GradDrop) also expose
  `weigh(gram_kk, state, **extras) -> (coeffs_k, state)`; the train step
  uses it to apply the coefficients to gradients it never materialises per
  task (the last-shared-layer and shared-representation modes).

Extras: the train step passes these keyword arguments to every `update`,
`weigh` and `observe`; a method reads those it needs and ignores the rest:

* `step`: int32 [], the index of the step being taken (0-based);
* `rng`: a PRNG key for the method's random choices in this step;
* `present_k`: float32 [k], 1 for the tasks in this step's batch, 0 for
  absent ones (schedules). Absent tasks must get weight 0 and their (zero)
  gradients must not steer the others;
* `losses_k` (aggregation `update`/`weigh`, and `observe`): float32 [k], the
  per-task losses of the step;
* `weights_k` (`observe`): the weights `update` returned for this step.

Called by hand, `present_k` defaults to every task present; methods that
draw random numbers need `rng`.

Methods register under a name; `from_spec("cagrad(c=0.4)")` builds one from
the string a config holds.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from mtl_jax.registry import Registry
from mtl_jax.specs import parse_spec
from mtl_jax.weighting import linalg


class WeightingUpdateFn(Protocol):

  def __call__(self, losses_k: jax.Array, state: Any, **extras
               ) -> tuple[jax.Array, Any]:
    """Maps per-task losses (and the state) to per-task weights."""


class ObserveFn(Protocol):

  def __call__(self, grad_norms_k: jax.Array, state: Any, **extras) -> Any:
    """Updates the state from the norms of the step's per-task gradients."""


GRADIENT_MODES = ("representation", "last_layer", "full")


class LossWeighting(NamedTuple):
  """A loss-weighting method: pure `init` and `update` (see module docstring).

  Attributes:
    init: `init(num_tasks) -> state`.
    update: `update(losses_k, state, **extras) -> (weights_k, state)`.
    observe: for methods that learn from gradient norms, `observe(grad_norms_k,
      state, **extras) -> state`; the step then measures the norms of the
      per-task gradients (where `gradient_mode` says) in its one backward pass.
    gradient_mode: where the method's paper measures gradients (used when the
      run's mode is 'auto').
  """

  init: Callable[[int], Any]
  update: WeightingUpdateFn
  observe: ObserveFn | None = None
  gradient_mode: str | None = None


class AggregationUpdateFn(Protocol):

  def __call__(self, grads_k: Any, state: Any, **extras) -> tuple[Any, Any]:
    """Maps per-task gradients (leading axis k) to one update direction."""


class GramWeighFn(Protocol):

  def __call__(self, gram_kk: jax.Array, state: Any, **extras
               ) -> tuple[jax.Array, Any]:
    """Maps the Gram matrix of the task gradients to combination coefficients."""


class GradientAggregation(NamedTuple):
  """A gradient-aggregation method: pure `init` and `update`.

  Attributes:
    init: `init(num_tasks) -> state`.
    update: `update(grads_k, state, **extras) -> (update, state)`.
    weigh: `weigh(gram_kk, state, **extras) -> (coeffs_k, state)` for methods
      whose update is `sum_k coeffs_k grads_k[k]` (see `from_gram`); None for
      the others, which then need per-task gradients of every shared parameter.
    gradient_mode: where the method's paper takes the task gradients (used
      when the run's mode is 'auto'); None: 'full'.
    modes: the gradient modes the method supports.
  """

  init: Callable[[int], Any]
  update: AggregationUpdateFn
  weigh: GramWeighFn | None = None
  gradient_mode: str | None = None
  modes: tuple[str, ...] = GRADIENT_MODES


def from_gram(init: Callable[[int], Any], weigh: GramWeighFn, *,
              gradient_mode: str | None = None,
              modes: tuple[str, ...] = GRADIENT_MODES) -> GradientAggregation:
  """An aggregation whose update is `sum_k coeffs_k grads_k[k]`.

  Args:
    init: `init(num_tasks) -> state`.
    weigh: `weigh(gram_kk, state, **extras) -> (coeffs_k, state)`, from the
      [k, k] Gram matrix of the task gradients (float32).
    gradient_mode: the paper's gradient mode (see `GradientAggregation`).
    modes: the supported gradient modes.

  Returns:
    The method, with `update` computing the Gram matrix of `grads_k` and
    combining the task gradients with the coefficients.
  """

  def update(grads_k, state, **extras):
    coeffs_k, state = weigh(linalg.gram(grads_k), state, **extras)
    return linalg.combine(coeffs_k, grads_k), state

  return GradientAggregation(init, update, weigh, gradient_mode, modes)


def present_mask(extras: Mapping[str, Any], num_tasks: int) -> jax.Array:
  """The `present_k` extra as float32 [k] (every task present when absent)."""
  present_k = extras.get("present_k")
  if present_k is None:
    return jnp.ones((num_tasks,), jnp.float32)
  return jnp.asarray(present_k, jnp.float32)


def require_rng(extras: Mapping[str, Any], method: str) -> jax.Array:
  """The `rng` extra; a clear error where a random method is called without one."""
  if extras.get("rng") is None:
    raise ValueError(f"balancing method {method!r} draws random numbers: pass rng=")
  return extras["rng"]


def require_losses(extras: Mapping[str, Any], method: str) -> jax.Array:
  """The `losses_k` extra as float32; a clear error where a method that reads the
  losses is called without them."""
  if extras.get("losses_k") is None:
    raise ValueError(f"balancing method {method!r} reads the step's losses: pass losses_k=")
  return jnp.asarray(extras["losses_k"], jnp.float32)


class EmptyState(NamedTuple):
  """The state of a stateless method."""


def init_empty(num_tasks: int) -> EmptyState:
  """The `init` of a stateless method."""
  del num_tasks
  return EmptyState()


METHODS: Registry[Callable[..., LossWeighting | GradientAggregation]] = Registry(
    "balancing method")
# Decorator: `@register("name")` over a method factory.
register = METHODS.register


def names() -> list[str]:
  """Every registered balancing method."""
  return METHODS.names()


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
  name, kwargs = parse_spec(spec, what="balancing method")
  factory = METHODS[name]
  parameters = inspect.signature(factory).parameters
  for key in kwargs:
    if key not in parameters or key in context:
      known = [p for p in parameters if p not in context]
      raise ValueError(f"balancing method {name!r} has no argument {key!r}; "
                       f"its arguments: {', '.join(known) or 'none'}")
  kwargs.update({k: v for k, v in context.items() if k in parameters})
  return factory(**kwargs)

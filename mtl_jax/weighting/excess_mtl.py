"""ExcessMTL (He et al., ICML 2024, "Robust Multi-Task
Learning with Excess Risks"; torchjd's ExcessMTLWeighting).

Task weights follow exponentiated-gradient ascent on estimates of each
task's excess risk: with `S_i` the running sum of task i's squared gradient
coordinates (AdaGrad's accumulator), the estimate is
`w_i = sum_n g_{i,n}^2 / sqrt(S_{i,n} + 1e-7)`, divided by its first value
(or by its mean over `n_warmup_steps`, during which the weights stay
uniform), and `lambda <- softmax(log lambda + robust_step_size * w)`; the
update is `sum_i lambda_i g_i`. As in torchjd, the first step without
warm-up takes the raw estimate. The estimate reads every coordinate, so it
needs per-task gradients of every shared parameter (`gradient_mode='full'`)
and keeps one accumulator per task the size of the shared parameters.
Absent tasks keep their weight and accumulator; the softmax runs over the
present tasks (a constant shift of log lambda changes nothing there).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import GradientAggregation, present_mask, register


class ExcessMTLState(NamedTuple):
  weights_k: jax.Array  # lambda, on the simplex
  squares_k: Any  # per task, the running sum of squared gradients (shared shapes)
  initial_k: jax.Array  # the estimate's scale (set after the warm-up)
  warmup_sum_k: jax.Array
  steps: jax.Array  # int32 []: steps taken


@register("excess_mtl")
def excess_mtl(robust_step_size: float = 1.0, n_warmup_steps: int = 0,
               shared_shapes: Any = None) -> GradientAggregation:
  """ExcessMTL (see module docstring; defaults: torchjd's).

  Args:
    robust_step_size: the step of the weights' exponentiated-gradient ascent.
    n_warmup_steps: steps that only average the estimate (weights stay uniform).
    shared_shapes: the shared parameters' shapes (from the run).

  Raises:
    ValueError: a non-positive step size or a negative warm-up.
  """
  if robust_step_size <= 0 or n_warmup_steps < 0:
    raise ValueError(f"excess_mtl: needs robust_step_size > 0 and n_warmup_steps >= 0, got "
                     f"{robust_step_size}, {n_warmup_steps}")

  def init(num_tasks):
    squares_k = linalg.per_task_zeros(shared_shapes, num_tasks, "excess_mtl")
    zeros_k = jnp.zeros((num_tasks,), jnp.float32)
    return ExcessMTLState(jnp.full((num_tasks,), 1.0 / num_tasks, jnp.float32), squares_k,
                          zeros_k, zeros_k, jnp.int32(0))

  def update(grads_k, state, **extras):
    leaves = jax.tree.leaves(grads_k)
    k = leaves[0].shape[0]
    present_k = present_mask(extras, k)
    squares_k = jax.tree.map(lambda total, g: total + jnp.square(g.astype(jnp.float32)),
                             state.squares_k, grads_k)
    estimate_k = sum(
        jnp.sum((jnp.square(g.astype(jnp.float32)) / jnp.sqrt(total + 1e-7)).reshape(k, -1),
                axis=1)
        for g, total in zip(leaves, jax.tree.leaves(squares_k)))
    warming = state.steps < n_warmup_steps
    warmup_sum_k = jnp.where(warming, state.warmup_sum_k + estimate_k, state.warmup_sum_k)
    first = state.steps == n_warmup_steps  # the step that sets the estimate's scale
    initial_k = jnp.where(first, warmup_sum_k / n_warmup_steps if n_warmup_steps else estimate_k,
                          state.initial_k)
    scaled_k = jnp.where(first & (n_warmup_steps == 0), estimate_k,
                         estimate_k / (initial_k + 1e-7))
    logits_k = jnp.log(state.weights_k) + robust_step_size * scaled_k
    ascended_k = jax.nn.softmax(jnp.where(present_k > 0, logits_k, -jnp.inf))
    # Over the present tasks, within the mass they held (absent ones keep theirs).
    mass = jnp.sum(state.weights_k * present_k)
    moved_k = jnp.where(present_k > 0, ascended_k * mass, state.weights_k)
    weights_k = jnp.where(warming, state.weights_k, moved_k)
    coeffs_k = weights_k * present_k
    coeffs_k = coeffs_k / jnp.maximum(jnp.sum(coeffs_k), 1e-30)  # the present tasks' mean
    new_state = ExcessMTLState(weights_k, squares_k, initial_k, warmup_sum_k,
                               state.steps + 1)
    return linalg.combine(coeffs_k, grads_k), new_state

  return GradientAggregation(init, update, gradient_mode="full", modes=("full",))

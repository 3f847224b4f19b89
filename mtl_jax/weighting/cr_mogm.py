"""CR-MOGM (Zhou, Zhang, Jiang, Zhang, Wu, Fan & Zhao, NeurIPS 2022, "On the
Convergence of Stochastic Multi-Objective Gradient Manipulation and Beyond";
torchjd's CRMOGMWeighting).

Correlation-reduced stochastic multi-objective gradient manipulation: the
coefficients of any Gram-based method (`base`) are smoothed across steps,
`lambda_t = alpha lambda_{t-1} + (1 - alpha) lambda_hat_t` (the first step
takes `lambda_hat_1`), which reduces the correlation between the weights and
the step's gradient noise that biases MGDA-style methods. Absent tasks get
weight 0 in the step; their smoothed coefficient waits for them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting import base as base_lib
from mtl_jax.weighting.base import from_gram, present_mask, register


class CRMOGMState(NamedTuple):
  lambda_k: jax.Array  # the smoothed coefficients
  started: jax.Array  # bool []: whether lambda_k holds a first step's coefficients
  base_state: Any  # the base method's state


@register("cr_mogm")
def cr_mogm(num_tasks: int, base: str = "mgda", alpha: float = 0.9):
  """CR-MOGM over a Gram-based method (see module docstring).

  Args:
    num_tasks: the run's number of tasks (from the run).
    base: the method whose coefficients are smoothed, a spec such as
      'mgda' or 'cagrad(c=0.4)' (any method with a Gram-matrix `weigh`).
    alpha: the smoothing, in [0, 1] (torchjd's default 0.9).

  Raises:
    ValueError: `alpha` out of [0, 1], or a base method without Gram weights.
  """
  if not 0.0 <= alpha <= 1.0:
    raise ValueError(f"cr_mogm: alpha must be in [0, 1], got {alpha}")
  inner = base_lib.from_spec(base, num_tasks=num_tasks)
  if not isinstance(inner, base_lib.GradientAggregation) or inner.weigh is None:
    raise ValueError(f"cr_mogm: base {base!r} has no Gram-matrix coefficients to smooth; "
                     "use a method such as mgda, cagrad, upgrad or nash_mtl")

  def init(tasks):
    return CRMOGMState(jnp.zeros((tasks,), jnp.float32), jnp.bool_(False), inner.init(tasks))

  def weigh(gram_kk, state, **extras):
    present_k = present_mask(extras, gram_kk.shape[0])
    hat_k, base_state = inner.weigh(gram_kk, state.base_state, **extras)
    smoothed_k = jnp.where(state.started, alpha * state.lambda_k + (1.0 - alpha) * hat_k, hat_k)
    lambda_k = jnp.where(present_k > 0, smoothed_k, state.lambda_k)
    return lambda_k * present_k, CRMOGMState(lambda_k, jnp.bool_(True), base_state)

  return from_gram(init, weigh, gradient_mode=inner.gradient_mode, modes=inner.modes)

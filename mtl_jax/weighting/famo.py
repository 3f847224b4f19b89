"""FAMO (Liu, Liang, Stone & Liu, NeurIPS 2023, "FAMO: Fast Adaptive Multitask
Optimization").

Task logits xi, `z = softmax(xi)`; the step descends `sum_i (z_i / c) log(L_i -
L_i*)` with `c = sum_j z_j / (L_j - L_j*)`, i.e. weighs task i by
`z_i / (c (L_i - L_i*))`, with minimum losses L* = 0. The logits then step on
`delta = log L(theta_t) - log L(theta_t+1)` pushed back through the softmax,
with Adam and L2 penalty gamma. Defaults are the reference code's:
learning rate 0.025, gamma = 0.01.

One deviation keeps the cost at one forward pass per step: the reference
code evaluates L(theta_t+1) on the same batch with an extra forward pass; we
take the next step's losses (on the next batch), so the logits step at the
start of step t+1, before its weights are computed (the same order as the
reference). Tasks absent from either step take no part in the logits step;
absent tasks weigh 0 and leave the softmax.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting import learned
from mtl_jax.weighting.base import LossWeighting, present_mask, register

_EPS = 1e-8


class FAMOState(NamedTuple):
  logits_k: jax.Array
  previous_losses_k: jax.Array
  previous_present_k: jax.Array
  opt_state: Any


@register("famo")
def famo(learning_rate: float = 0.025, gamma: float = 0.01) -> LossWeighting:
  """FAMO (see module docstring).

  Args:
    learning_rate: of the logits' Adam.
    gamma: the logits' L2 penalty (weight decay).
  """
  opt = learned.weights_optimizer("adam", learning_rate, weight_decay=gamma)

  def init(num_tasks):
    logits_k = jnp.zeros((num_tasks,), jnp.float32)
    return FAMOState(logits_k, jnp.ones((num_tasks,), jnp.float32),
                     jnp.zeros((num_tasks,), jnp.float32), opt.init(logits_k))

  def update(losses_k, state, **extras):
    present_k = present_mask(extras, losses_k.shape[0])
    losses_k32 = losses_k.astype(jnp.float32)
    both_k = present_k * state.previous_present_k
    delta_k = both_k * (jnp.log(state.previous_losses_k + _EPS) - jnp.log(losses_k32 + _EPS))
    _, softmax_vjp = jax.vjp(jax.nn.softmax, state.logits_k)
    (grad_k,) = softmax_vjp(delta_k)
    updates_k, opt_state = opt.update(grad_k, state.opt_state, state.logits_k)
    moved = jnp.sum(both_k) > 0
    logits_k = jnp.where(moved, state.logits_k + updates_k, state.logits_k)
    opt_state = jax.tree.map(lambda new, old: jnp.where(moved, new, old), opt_state,
                             state.opt_state)

    z_k = jax.nn.softmax(jnp.where(present_k > 0, logits_k, -jnp.inf))
    gaps_k = losses_k32 + _EPS
    normaliser = jnp.sum(z_k / gaps_k)
    weights_k = present_k * z_k / (normaliser * gaps_k)
    state = FAMOState(logits_k,
                      jnp.where(present_k > 0, losses_k32, state.previous_losses_k),
                      present_k, opt_state)
    return weights_k.astype(losses_k.dtype), state

  return LossWeighting(init, update)

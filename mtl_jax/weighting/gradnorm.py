"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

"GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
Multitask Networks". Learned loss weights w_i, updated after each step to
minimise `L_grad = sum_i |G_i - mean_j(G_j) * r_i^alpha|` where
`G_i = ||grad_W w_i L_i||` is the norm of task i's weighted gradient at the
last shared layer W, `r_i = L~_i / mean_j L~_j` the relative inverse
training rate and `L~_i = L_i(t) / L_i(0)`; the target is a constant (no
gradient through it). After each weight step the weights are renormalised
to sum to T (the number of tasks).

Defaults: alpha = 1.5 (the paper's NYUv2 setting, also LibMTL's); gradient
norms at the last shared layer (`gradient_mode='last_layer'`); the weights
take their own Adam step with learning rate 0.025 (the paper trains them
with the network's optimizer; ours is sized for the Transformer, far too
small for them). The weights of step t are those learned up to step t-1, as
in the paper, so measuring the norms costs no extra backward pass.

Absent tasks (schedules) keep their weight and take no part in the means;
L_i(0) is the loss of the first step task i is present.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.weighting import learned, linalg
from mtl_jax.weighting.base import LossWeighting, present_mask, register


class GradNormState(NamedTuple):
  weights_k: jax.Array
  initial_losses_k: jax.Array  # L_i(0)
  seen_k: jax.Array  # bool: L_i(0) recorded
  opt_state: Any


def balance_loss(weights_k, grad_norms_k, losses_k, initial_losses_k, present_k,
                 alpha):
  """GradNorm's `L_grad` (the target held constant), over the present tasks."""
  weighted_norms_k = weights_k * grad_norms_k
  mean_norm = linalg.masked_mean(weighted_norms_k, present_k)
  ratios_k = jnp.where(present_k > 0,
                       losses_k / jnp.where(initial_losses_k > 0, initial_losses_k, 1.0),
                       0.0)
  relative_k = ratios_k / jnp.maximum(linalg.masked_mean(ratios_k, present_k), 1e-12)
  target_k = jax.lax.stop_gradient(mean_norm * relative_k ** alpha)
  return jnp.sum(jnp.abs(weighted_norms_k - target_k) * present_k)


@register("gradnorm")
def gradnorm(alpha: float = 1.5, learning_rate: float = 0.025,
             optimizer: str = "adam") -> LossWeighting:
  """GradNorm as published (see module docstring).

  Args:
    alpha: the asymmetry; larger pulls the tasks' training rates together harder.
    learning_rate: of the weights' own optimizer.
    optimizer: 'adam' or 'sgd', the weights' own optimizer.
  """
  opt = learned.weights_optimizer(optimizer, learning_rate)

  def init(num_tasks):
    weights_k = jnp.ones((num_tasks,), jnp.float32)
    return GradNormState(weights_k, jnp.zeros((num_tasks,), jnp.float32),
                         jnp.zeros((num_tasks,), bool), opt.init(weights_k))

  def update(losses_k, state, **extras):
    present_k = present_mask(extras, losses_k.shape[0]) > 0
    first_k = present_k & ~state.seen_k
    state = state._replace(
        initial_losses_k=jnp.where(first_k, losses_k.astype(jnp.float32),
                                   state.initial_losses_k),
        seen_k=state.seen_k | present_k)
    return state.weights_k.astype(losses_k.dtype), state

  def observe(grad_norms_k, state, *, losses_k, **extras):
    num_tasks = grad_norms_k.shape[0]
    present_k = present_mask(extras, num_tasks)
    grad_k = jax.grad(balance_loss)(state.weights_k, grad_norms_k.astype(jnp.float32),
                                    losses_k.astype(jnp.float32),
                                    state.initial_losses_k, present_k, alpha)
    updates_k, opt_state = opt.update(grad_k, state.opt_state, state.weights_k)
    weights_k = state.weights_k + updates_k * present_k
    weights_k = jnp.maximum(weights_k, 1e-6)
    weights_k = weights_k * num_tasks / jnp.sum(weights_k)
    return state._replace(weights_k=weights_k, opt_state=opt_state)

  return LossWeighting(init, update, observe=observe, gradient_mode="last_layer")

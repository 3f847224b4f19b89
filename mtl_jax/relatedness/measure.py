"""Measured task relatedness: task-gradient cosines and lookahead inter-task affinity.

Both are taken on the shared parameters (the encoder: task-specific heads
get no gradient from other tasks, so including them would only shrink the
cosines), with dropout off, on one batch of every task:

* `gradient_cosine[i, j] = cos(grad L_i, grad L_j)`.
* `lookahead_affinity[i, j] = 1 - L_j(theta - lr * grad L_i) / L_j(theta)`
  (Fifty et al. 2021, "Efficiently Identifying Task Groupings for
  Multi-Task Learning", TAG): how a step on task i alone (plain SGD on the
  shared parameters, as in the paper's definition) changes task j's loss;
  positive means i helps j. Rows: the task stepped on; columns: the task
  whose loss moves. The step size is its own setting
  (`relatedness.lookahead_lr`): SGD at an Adam learning rate moves the
  loss by about as little as float32 rounding.

The function is jitted once and called every `relatedness.measure_every`
steps by the loop, apart from the train step (one backward pass for all k
task gradients, then k forward passes).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from mtl_jax.weighting.diagnostics import gradient_cosines


def relatedness_measures(losses_fn: Callable[[Any], jax.Array], shared: Any,
                         learning_rate: jax.Array | float) -> dict[str, jax.Array]:
  """Gradient cosines and lookahead affinity of the tasks of `losses_fn`.

  Args:
    losses_fn: shared params -> [k] task losses (everything else fixed).
    shared: the shared params.
    learning_rate: the lookahead's SGD step size.

  Returns:
    `gradient_cosine` and `lookahead_affinity` ([k, k]) and `losses` ([k]).
    Affinities towards a task whose loss is 0 are 0.
  """
  losses_k, vjp = jax.vjp(losses_fn, shared)
  k = losses_k.shape[0]
  # All k task gradients from one batched backward pass.
  (grads_k,) = jax.vmap(vjp)(jnp.eye(k, dtype=losses_k.dtype))

  def losses_after_step_on(grads):
    return losses_fn(jax.tree.map(lambda p, g: p - learning_rate * g.astype(p.dtype),
                                  shared, grads))

  # One task at a time: the memory of a forward pass, not k of them.
  after_kk = jax.lax.map(losses_after_step_on, grads_k)
  positive_k = losses_k > 0
  affinity_kk = jnp.where(positive_k[None, :],
                          1.0 - after_kk / jnp.where(positive_k, losses_k, 1.0)[None, :],
                          0.0)
  return {"gradient_cosine": gradient_cosines(grads_k), "lookahead_affinity": affinity_kk,
          "losses": losses_k}


def make_measure_fn(losses_fn: Callable[[Any, Any], jax.Array], shared_key: str = "encoder"
                    ) -> Callable[[Any, Any, jax.Array], dict[str, jax.Array]]:
  """`measure(params, batch, learning_rate)`, the measures over `params[shared_key]`.

  Args:
    losses_fn: `(params, batch) -> [k]` task losses without dropout, e.g.
      `functools.partial(task_losses, model, train=False, rng=None)`.
    shared_key: the params entry holding the shared parameters.

  Every task of `batch` should be present (real examples), else its row and
  column say nothing.
  """

  def measure(params, batch, learning_rate):
    return relatedness_measures(
        lambda shared: losses_fn({**params, shared_key: shared}, batch),
        params[shared_key], learning_rate)

  return measure

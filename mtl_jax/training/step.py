"""The pure train and predict steps.

`train_step(state, batch, rng) -> (state, metrics)` computes the vector of
per-task losses `losses_k` (k follows the run's task order), asks the loss
weighting for `weights_k`, and takes one optimizer step on
`sum_k weights_k * losses_k`. A task whose `task_present` is 0 in a batch
gets weight 0, and its `task_weight` (a schedule's multiplier) scales its
weight, so every schedule runs the same compiled program.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from mtl_jax.training.state import TrainState
from mtl_jax.weighting import LossWeighting

Batch = Mapping[str, Mapping[str, jax.Array]]
Metrics = dict[str, jax.Array]


def task_losses(model, kinds: Mapping[str, Any], params, batch: Batch, *, train: bool,
                rng: jax.Array | None) -> jax.Array:
  """The loss of every task, stacked in the model's task order: [k] float32."""
  return task_losses_and_hidden(model, kinds, params, batch, train=train, rng=rng)[0]


def task_losses_and_hidden(model, kinds: Mapping[str, Any], params, batch: Batch, *,
                           train: bool, rng: jax.Array | None
                           ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """[k] task losses and each task's encoder output {task: [b, l, d]}."""
  hidden = model.encode(params, batch, train=train, rng=rng)
  outputs = model.apply_heads(params, hidden, batch, train=train, rng=rng)
  return jnp.stack([kinds[name].loss(outputs[name], batch[name])
                    for name in model.task_names]), hidden


def task_presence(model, batch: Batch) -> jax.Array:
  """[k] each task's share in this step: `task_present` (0/1) x `task_weight` (default 1)."""
  return jnp.stack([jnp.asarray(batch[name].get("task_present", 1.0), jnp.float32)
                    * jnp.asarray(batch[name].get("task_weight", 1.0), jnp.float32)
                    for name in model.task_names])


def make_train_step(model, kinds: Mapping[str, Any], weighting: LossWeighting,
                    optimizer: optax.GradientTransformation,
                    regularizer: Callable[..., jax.Array] | None = None
                    ) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]:
  """Builds the train step of a run.

  Args:
    model: the multi-task model (`init`, `apply`, `task_names`).
    kinds: task name -> kind object (its `loss`).
    weighting: the loss-weighting method.
    optimizer: the optax optimizer.
    regularizer: optional `regularizer(hidden, batch, present_k) -> scalar`
      added to the objective (e.g. the task-relatedness penalty,
      `mtl_jax.relatedness`); `hidden` is the encoder output per task.

  Returns:
    `train_step(state, batch, rng) -> (state, metrics)`, pure, to be jitted
    with the state donated. `rng` is this step's key (dropout);
    metrics hold `loss` (the weighted sum), `losses` and `weights` ([k]) and
    `grad_norm`, and `regularizer` when there is one.
  """

  def train_step(state: TrainState, batch: Batch, rng: jax.Array):
    present_k = task_presence(model, batch)

    def objective(params):
      losses_k, hidden = task_losses_and_hidden(model, kinds, params, batch, train=True,
                                                rng=rng)
      weights_k, weighting_state = weighting.update(
          jax.lax.stop_gradient(losses_k), state.weighting_state)
      weights_k = jax.lax.stop_gradient(weights_k) * present_k
      penalty = (regularizer(hidden, batch, present_k) if regularizer is not None
                 else jnp.zeros((), jnp.float32))
      return (jnp.sum(weights_k * losses_k) + penalty,
              (losses_k, weights_k, weighting_state, penalty))

    (loss, (losses_k, weights_k, weighting_state, penalty)), grads = jax.value_and_grad(
        objective, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1, params=optax.apply_updates(state.params, updates),
        opt_state=opt_state, weighting_state=weighting_state)
    metrics = {"loss": loss, "losses": losses_k, "weights": weights_k,
               "grad_norm": optax.tree.norm(grads)}
    if regularizer is not None:
      metrics["regularizer"] = penalty
    return new_state, metrics

  return train_step


def make_predict_step(model, kinds: Mapping[str, Any]
                      ) -> Callable[[Any, Batch], dict[str, jax.Array]]:
  """`predict_step(params, batch) -> {task: predictions}` without dropout."""

  def predict_step(params, batch: Batch):
    outputs = model.apply(params, batch, train=False)
    return {name: kinds[name].predict(out) for name, out in outputs.items()}

  return predict_step

"""The pure train and predict steps.

`train_step(state, batch, rng) -> (state, metrics)` computes the vector of
per-task losses `losses_k` (k follows the run's task order), balances the
tasks and takes one optimizer step. A task whose `task_present` is 0 in a
batch gets weight 0, and its `task_weight` (a schedule's multiplier,
`training/schedules.py`) scales its weight, so every schedule runs the same
compiled program. An optional regulariser of the encoder output (the
task-relatedness penalty, `mtl_jax.relatedness`) joins the objective.

Balancing (`mtl_jax.weighting`):

* a loss weighting that reads only losses: one backward pass of
  `sum_k weights_k * losses_k` (the gradient mode does not matter);
* a loss weighting that learns from gradient norms (GradNorm), or any
  method with diagnostics on: the per-task gradients are probed in the same
  backward pass (`training/gradients.py`, the gradient mode says where);
* a gradient aggregation: its coefficients (from the Gram matrix of the
  probed task gradients) weigh the task gradients of the shared parameters,
  or (GradDrop) it maps the full per-task gradients to the update. The
  task-specific parameters (heads) get their own task's gradient.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from mtl_jax.training import gradients as gradients_lib
from mtl_jax.training.state import TrainState
from mtl_jax.weighting import (GRADIENT_MODES, GradientAggregation, LossWeighting,
                               diagnostics as diagnostics_lib, linalg)

Batch = Mapping[str, Mapping[str, jax.Array]]
Metrics = dict[str, jax.Array]


def task_losses(model, params, batch: Batch, *, train: bool,
                rng: jax.Array | None) -> jax.Array:
  """The loss of every task, stacked in the model's task order: [k] float32."""
  return task_losses_and_hidden(model, params, batch, train=train, rng=rng)[0]


def task_losses_and_hidden(model, params, batch: Batch, *, train: bool,
                           rng: jax.Array | None
                           ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """[k] task losses and each task's encoder output {task: [b, l, d]}."""
  hidden = model.encode(params, batch, train=train, rng=rng)
  outputs = model.apply_heads(params, hidden, batch, train=train, rng=rng)
  return model.losses(outputs, batch), hidden


def task_presence(model, batch: Batch) -> jax.Array:
  """[k] 1.0 for tasks that take part in this step (default: all)."""
  return _per_task(model, batch, "task_present")


def schedule_weights(model, batch: Batch) -> jax.Array:
  """[k] each task's loss multiplier from the schedule: `task_weight` (default 1)."""
  return _per_task(model, batch, "task_weight")


def _per_task(model, batch: Batch, key: str) -> jax.Array:
  return jnp.stack([jnp.asarray(batch[name].get(key, 1.0), jnp.float32)
                    for name in model.task_names])


# Folded into the step's key for the balancing method's random draws (the
# model folds in 0 for the encoder and 1 + task index for the heads).
_BALANCING_KEY = 0x6B616C


def balancing_rng(rng: jax.Array) -> jax.Array:
  """The key a step with key `rng` gives its balancing method (`extras['rng']`)."""
  return jax.random.fold_in(rng, _BALANCING_KEY)


def resolve_gradient_mode(method: LossWeighting | GradientAggregation, gradient_mode: str,
                          diagnostics: bool = False) -> str | None:
  """Where the step takes per-task gradients for `method`; None when it needs none.

  Args:
    method: the balancing method.
    gradient_mode: 'auto' (the method's paper's choice; 'full' for
      aggregations, 'representation' otherwise) or one of
      'representation', 'last_layer', 'full'.
    diagnostics: whether the step reports gradient norms and cosines.

  Raises:
    ValueError: an unknown mode, or one the method does not support.
  """
  if gradient_mode != "auto" and gradient_mode not in GRADIENT_MODES:
    raise ValueError(f"unknown gradient mode {gradient_mode!r} "
                     "(config.balancing.gradient_mode); use 'auto' or one of "
                     f"{', '.join(GRADIENT_MODES)}")
  if isinstance(method, GradientAggregation):
    mode = (method.gradient_mode or "full") if gradient_mode == "auto" else gradient_mode
    if mode not in method.modes:
      raise ValueError(f"this balancing method supports gradient_mode "
                       f"{' or '.join(repr(m) for m in method.modes)}, not {mode!r} "
                       "(config.balancing.gradient_mode)")
    return mode
  if method.observe is None and not diagnostics:
    return None
  return (method.gradient_mode or "representation") if gradient_mode == "auto" else gradient_mode


def make_train_step(model, weighting: LossWeighting | GradientAggregation,
                    optimizer: optax.GradientTransformation, *,
                    gradient_mode: str = "auto", diagnostics: bool = False,
                    last_layer: str = "",
                    regularizer: Callable[..., jax.Array] | None = None
                    ) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]:
  """Builds the train step of a run.

  Args:
    model: the multi-task model (`init`, `encode`, `apply_heads`, `apply`,
      `losses`, `task_names`).
    weighting: the balancing method: a loss weighting or a gradient
      aggregation (its state is `state.weighting_state`).
    optimizer: the optax optimizer.
    gradient_mode: where per-task gradients are taken ('auto',
      'representation', 'last_layer', 'full'; see `training/gradients.py`).
    diagnostics: also report per-task gradient norms and their pairwise
      cosines (probed in the step's one backward pass).
    last_layer: the last shared layer's path in `params["encoder"]` ('' =
      the last `layer_<i>`), for `gradient_mode='last_layer'`.
    regularizer: optional `regularizer(hidden, batch, present_k) -> scalar`
      added to the objective (e.g. the task-relatedness penalty,
      `mtl_jax.relatedness`); `hidden` is the encoder output per task. With a
      method that probes per-task gradients, its gradient is taken in a
      separate encoder pass and added to the balanced update.

  Returns:
    `train_step(state, batch, rng) -> (state, metrics)`, pure, to be jitted
    with the state donated. `rng` is this step's key (dropout, and the
    method's random draws); metrics hold `loss` (the weighted sum, plus the
    regulariser), `losses` and `weights` ([k]; for aggregations, the
    coefficients of the task gradients in the update where the method has
    them), `grad_norm`, `skipped` (1 when the loss or gradient norm was not
    finite: then only `step` changed), with diagnostics `grad_norms` [k] and
    `grad_cosines` [k, k], and with a regulariser `regularizer`.
  """
  mode = resolve_gradient_mode(weighting, gradient_mode, diagnostics)
  aggregates = isinstance(weighting, GradientAggregation)

  def weighted_step(state, batch, rng, present_k, scale_k, extras):
    """A loss weighting that needs no gradients: one backward pass."""

    def objective(params):
      losses_k, hidden = task_losses_and_hidden(model, params, batch, train=True,
                                                rng=rng)
      weights_k, weighting_state = weighting.update(
          jax.lax.stop_gradient(losses_k), state.weighting_state, **extras)
      weights_k = jax.lax.stop_gradient(weights_k) * scale_k
      penalty = (regularizer(hidden, batch, present_k) if regularizer is not None
                 else jnp.zeros((), jnp.float32))
      return (jnp.sum(weights_k * losses_k) + penalty,
              (losses_k, weights_k, weighting_state, penalty))

    (_, (losses_k, weights_k, weighting_state, penalty)), grads = jax.value_and_grad(
        objective, has_aux=True)(state.params)
    return grads, losses_k, weights_k, weighting_state, penalty, {}

  def regularizer_grads(params, batch, rng, present_k):
    """The regulariser and its gradient, from an encoder pass of its own."""
    return jax.value_and_grad(lambda params: regularizer(
        model.encode(params, batch, train=True, rng=rng), batch, present_k))(params)

  def probed_step(state, batch, rng, present_k, scale_k, extras):
    """Per-task gradients probed in the one backward pass (see module docstring)."""
    # Only methods that transform the per-task gradients themselves read them
    # whole; the others need the probes and `shared`.
    task_grads = gradients_lib.task_gradients(
        model, state.params, batch, rng, mode=mode, last_layer=last_layer,
        per_task_grads=aggregates and weighting.weigh is None)
    losses_k = jax.lax.stop_gradient(task_grads.losses_k)
    probes_k = linalg.mask_tasks(task_grads.probes_k, present_k)
    gram_kk = (linalg.gram(probes_k)
               if diagnostics or (aggregates and weighting.weigh is not None) else None)
    extra_metrics = diagnostics_lib.from_gram(gram_kk) if diagnostics else {}
    if not aggregates:
      weights_k, weighting_state = weighting.update(losses_k, state.weighting_state,
                                                    **extras)
      weights_k = jax.lax.stop_gradient(weights_k) * scale_k
      shared_grads = task_grads.shared(weights_k)
      if weighting.observe is not None:
        norms_k = (linalg.norms_from_gram(gram_kk) if gram_kk is not None
                   else linalg.norms(probes_k))
        weighting_state = weighting.observe(norms_k, weighting_state, losses_k=losses_k,
                                            weights_k=weights_k, **extras)
    elif weighting.weigh is not None:
      weights_k, weighting_state = weighting.weigh(gram_kk, state.weighting_state,
                                                   losses_k=losses_k, **extras)
      weights_k = jax.lax.stop_gradient(weights_k) * scale_k
      shared_grads = task_grads.shared(weights_k)
    else:
      shared_grads, weighting_state = weighting.update(
          linalg.mask_tasks(task_grads.shared_grads_k, scale_k), state.weighting_state,
          losses_k=losses_k, **extras)
      weights_k = scale_k
    # Heads: their task's gradient, with the loss weight (1 under aggregation).
    head_weights_k = scale_k if aggregates else weights_k
    grads = gradients_lib.merge(task_grads.task_specific(head_weights_k), shared_grads)
    penalty = jnp.zeros((), jnp.float32)
    if regularizer is not None:
      penalty, penalty_grads = regularizer_grads(state.params, batch, rng, present_k)
      grads = jax.tree.map(jnp.add, grads, penalty_grads)
    return grads, losses_k, weights_k, weighting_state, penalty, extra_metrics

  def train_step(state: TrainState, batch: Batch, rng: jax.Array):
    present_k = task_presence(model, batch)
    # Balancing methods see which tasks are present; the schedule's weights
    # scale the tasks' shares in the update.
    scale_k = present_k * schedule_weights(model, batch)
    extras = {"step": state.step, "rng": balancing_rng(rng),
              "present_k": present_k}
    step_fn = weighted_step if mode is None else probed_step
    grads, losses_k, weights_k, weighting_state, penalty, extra_metrics = step_fn(
        state, batch, rng, present_k, scale_k, extras)
    loss_weights_k = scale_k if aggregates else weights_k
    loss = jnp.sum(loss_weights_k * losses_k) + penalty
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

    def apply_update(_):
      updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
      return optax.apply_updates(state.params, updates), opt_state, weighting_state

    def keep(_):
      return state.params, state.opt_state, state.weighting_state

    params, opt_state, weighting_state = jax.lax.cond(finite, apply_update, keep, None)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              weighting_state=weighting_state)
    metrics = {"loss": loss, "losses": losses_k, "weights": weights_k,
               "grad_norm": grad_norm, "skipped": jnp.logical_not(finite).astype(jnp.int32),
               **extra_metrics}
    if regularizer is not None:
      metrics["regularizer"] = penalty
    return new_state, metrics

  return train_step


def make_predict_step(model, scores: bool = False
                      ) -> Callable[[Any, Batch], dict[str, jax.Array]]:
  """`predict_step(params, batch) -> {task: predictions}` without dropout.

  With `scores`, each label's probability instead (`model.scores`: tasks of
  kinds that have them).
  """

  def predict_step(params, batch: Batch):
    outputs = model.apply(params, batch, train=False)
    return model.scores(outputs) if scores else model.predict(outputs)

  return predict_step

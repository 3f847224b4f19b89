"""The task-relatedness regulariser `L_R = sum_ij R_ij ||f_i - f_j||^2`.

`f_i`, task i's feature representation, is the mean over task i's examples
in the step of its mean-pooled encoder output (`model.encode`'s hidden
states, real tokens only): a [d] vector per task. It is defined for every
task kind and every sharing architecture (the encoder output is the model
contract's task representation), and `||f_i - f_j||^2` is the squared
distance between the means of the two tasks' representation distributions
(a linear-kernel MMD), so the penalty pulls the representations of related
tasks towards each other, in proportion to R_ij. Pairs where either task is
absent from the step (a schedule) are left out.

R is either given (`relatedness.prior`: a k x k matrix in task order,
non-negative; the diagonal does not matter) or learned. A free R would
minimise `L_R` by going to 0, so the learned R is constrained: each row is a
distribution over the other tasks, and R minimises
`L_R - temperature * sum_i H(R_i)` (entropy keeps rows from collapsing onto
one task). That minimiser has a closed form, the row-wise softmax of
`-d_ij / temperature` over j != i; the distances are divided by their mean
so the temperature does not depend on the features' scale. The step uses
that closed form at the current features (no gradient flows into R), which
is what alternating minimisation over R and the model converges to, with no
extra parameters or optimizer state.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.encoders.bert import mean_pool


def task_features(hidden: Mapping[str, jax.Array], batch: Mapping[str, Mapping[str, Any]],
                  task_names: Sequence[str]) -> jax.Array:
  """[k, d] `f_i`: the mean over real examples of the mean-pooled hidden states.

  Args:
    hidden: task -> encoder output [b, l, d].
    batch: task -> its batch (`attention_mask` [b, l]; padding rows all 0).
    task_names: the run's tasks, in order.
  """
  features = []
  for name in task_names:
    mask_bl = batch[name]["attention_mask"]
    pooled_bd = mean_pool(hidden[name].astype(jnp.float32), mask_bl)
    example_b = mask_bl[:, 0].astype(jnp.float32)
    features.append(jnp.sum(pooled_bd * example_b[:, None], axis=0)
                    / jnp.maximum(jnp.sum(example_b), 1.0))
  return jnp.stack(features)


def squared_distances(features_kd: jax.Array) -> jax.Array:
  """[k, k] `||f_i - f_j||^2`."""
  diff_kkd = features_kd[:, None, :] - features_kd[None, :, :]
  return jnp.sum(diff_kkd * diff_kkd, axis=-1)


def learned_relatedness(distances_kk: jax.Array, present_k: jax.Array,
                        temperature: float = 1.0) -> jax.Array:
  """The entropy-regularised minimiser of `L_R` over row-stochastic R (see module doc).

  Args:
    distances_kk: [k, k] squared feature distances.
    present_k: [k] > 0 for the tasks of this step; rows and columns of absent
      tasks are 0.
    temperature: > 0; larger spreads each row over more tasks.

  Returns:
    [k, k] R, no gradient: each present task's row sums to 1 over the
    other present tasks (a row with no other present task is 0).
  """
  distances_kk = jax.lax.stop_gradient(distances_kk)
  k = distances_kk.shape[0]
  active_k = present_k > 0
  pairs_kk = active_k[:, None] & active_k[None, :] & ~jnp.eye(k, dtype=bool)
  mean = (jnp.sum(jnp.where(pairs_kk, distances_kk, 0.0))
          / jnp.maximum(jnp.sum(pairs_kk), 1).astype(distances_kk.dtype))
  logits_kk = -distances_kk / (temperature * jnp.maximum(mean, 1e-12))
  logits_kk = jnp.where(pairs_kk, logits_kk, -jnp.inf)
  # A row with no other present task would be softmax(-inf...) = NaN.
  has_pair_k = jnp.any(pairs_kk, axis=1)
  logits_kk = jnp.where(has_pair_k[:, None], logits_kk, 0.0)
  relatedness_kk = jax.nn.softmax(logits_kk, axis=1)
  return jnp.where(pairs_kk, relatedness_kk, 0.0)


def relatedness_penalty(features_kd: jax.Array, relatedness_kk: jax.Array,
                        present_k: jax.Array) -> jax.Array:
  """`sum_ij R_ij ||f_i - f_j||^2` over pairs of tasks present in the step."""
  active_k = (present_k > 0).astype(jnp.float32)
  mask_kk = active_k[:, None] * active_k[None, :]
  return jnp.sum(relatedness_kk * mask_kk * squared_distances(features_kd))


class RelatednessRegularizer:
  """`weight * L_R` as the train step's `regularizer(hidden, batch, present_k)`.

  Build it with `make_regularizer`; `relatedness(...)` gives the R it uses.
  """

  def __init__(self, weight: float, task_names: Sequence[str],
               prior_kk: np.ndarray | None = None, temperature: float = 1.0):
    self.weight = weight
    self.task_names = tuple(task_names)
    self.prior_kk = prior_kk
    self.temperature = temperature

  def relatedness(self, hidden, batch, present_k) -> jax.Array:
    """[k, k] R: the prior, or the one learned from this batch's features."""
    if self.prior_kk is not None:
      return jnp.asarray(self.prior_kk)
    features_kd = task_features(hidden, batch, self.task_names)
    return learned_relatedness(squared_distances(features_kd), present_k, self.temperature)

  def __call__(self, hidden, batch, present_k) -> jax.Array:
    features_kd = task_features(hidden, batch, self.task_names)
    relatedness_kk = (jnp.asarray(self.prior_kk) if self.prior_kk is not None else
                      learned_relatedness(squared_distances(features_kd), present_k,
                                          self.temperature))
    return self.weight * relatedness_penalty(features_kd, relatedness_kk, present_k)


def make_regularizer(config: Mapping[str, Any], task_names: Sequence[str]
                     ) -> RelatednessRegularizer | None:
  """The relatedness regulariser a config asks for, or None when it is off.

  Args:
    config: the `relatedness` section: `weight` (0: off), `prior` (a k x k
      matrix, or empty to learn R), `temperature` (learned R).
    task_names: the run's tasks, in order.

  Raises:
    ValueError: a negative weight or temperature; a prior of the wrong
      shape, negative or non-finite.
  """
  weight = float(config["weight"])
  if weight == 0:
    return None
  if weight < 0:
    raise ValueError(f"relatedness.weight must be >= 0, got {weight}")
  prior_kk = prior_matrix(config["prior"], task_names)
  temperature = float(config["temperature"])
  if prior_kk is None and not temperature > 0:
    raise ValueError(f"relatedness.temperature must be > 0, got {temperature}")
  return RelatednessRegularizer(weight, task_names, prior_kk, temperature)


def prior_matrix(prior: Any, task_names: Sequence[str]) -> np.ndarray | None:
  """The configured R as a [k, k] float32 array; None when R is learned (empty prior)."""
  if prior is None or len(prior) == 0:
    return None
  k = len(task_names)
  try:
    prior_kk = np.asarray(prior, np.float32)
  except (TypeError, ValueError):
    prior_kk = None
  if prior_kk is None or prior_kk.shape != (k, k):
    raise ValueError(f"relatedness.prior must be a {k} x {k} matrix (rows and columns "
                     f"in task order {list(task_names)}), got {prior!r}")
  if not np.isfinite(prior_kk).all() or (prior_kk < 0).any():
    raise ValueError(f"relatedness.prior must be finite and non-negative, got {prior!r}")
  return prior_kk

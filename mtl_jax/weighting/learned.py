"""The small optimizer of methods whose weights are learned (GradNorm, uncertainty, FAMO).

These methods keep their learnable quantities (weights, log-variances,
logits) and this optimizer's state in the method state, and take one step
of their own inside `update`/`observe`: the whole step stays one jitted
`train_step`, and the model's optimizer (and its learning rate, sized for
a Transformer) never sees them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from mtl_jax.promotion import standard_promotion

OPTIMIZERS = ("adam", "sgd")


def weights_optimizer(name: str, learning_rate: float, weight_decay: float = 0.0
                      ) -> optax.GradientTransformation:
  """'adam' or 'sgd' with an L2 penalty added to the gradient (PyTorch's coupled
  `weight_decay`, as the methods' reference code uses).

  Raises:
    ValueError: an unknown optimizer name.
  """
  if name not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {name!r} for learned weights; use "
                     f"{' or '.join(OPTIMIZERS)}")
  base = optax.adam(learning_rate) if name == "adam" else optax.sgd(learning_rate)
  if weight_decay:
    base = optax.chain(optax.add_decayed_weights(weight_decay), base)
  return standard_promotion(base)


def step(objective, opt: optax.GradientTransformation, values_k: jax.Array, opt_state,
         losses_k: jax.Array, present_k: jax.Array):
  """One step of a method's own optimizer on `objective(values_k, losses_k, present_k)`.

  Returns:
    (values_k, opt_state) after the step; absent tasks' values do not move.
  """
  grad_k = jax.grad(objective)(values_k, losses_k.astype(jnp.float32), present_k)
  updates_k, opt_state = opt.update(grad_k, opt_state, values_k)
  return values_k + updates_k * present_k, opt_state

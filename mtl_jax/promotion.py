"""optax transformations traced under JAX's standard dtype promotion (a leaf module).

optax mixes int32 step counts with float moments (Adam's bias correction,
`decay ** count`), which `jax_numpy_dtype_promotion="strict"` rejects. Our own
code is strict-clean (the tests run strict); the optimizers we call from it
keep optax's own promotion rules, so a strict user's step still traces.
"""

from __future__ import annotations

import jax
import optax


def standard_promotion(tx: optax.GradientTransformation) -> optax.GradientTransformation:
  """`tx`, its `init` and `update` traced under the standard promotion rules."""

  def init(params):
    with jax.numpy_dtype_promotion("standard"):
      return tx.init(params)

  def update(updates, state, params=None, **extra_args):
    with jax.numpy_dtype_promotion("standard"):
      return tx.update(updates, state, params, **extra_args)

  return optax.GradientTransformationExtraArgs(init, update)

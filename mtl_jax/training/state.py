"""The train state: one pytree holding everything a step reads and writes."""

from __future__ import annotations

from typing import Any

import jax
import flax.struct
import optax


@flax.struct.dataclass
class TrainState:
  """Params, optimizer and balancing state, the step and the run's base key.

  The dropout key of step s is `fold_in(rng, s)`, so the state at step s
  fully determines the rest of the run (exact resume).
  """

  step: jax.Array
  params: Any
  opt_state: optax.OptState
  weighting_state: Any
  rng: jax.Array

  @classmethod
  def create(cls, params, optimizer: optax.GradientTransformation,
             weighting_state: Any, rng: jax.Array) -> "TrainState":
    import jax.numpy as jnp
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               opt_state=optimizer.init(params), weighting_state=weighting_state,
               rng=rng)

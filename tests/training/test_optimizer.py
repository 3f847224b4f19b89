"""The run's optimizer: gradient accumulation with optax.MultiSteps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.config import default_config
from mtl_jax.training import make_optimizer


def _config(**changes):
  config = default_config().optimizer
  config.update(learning_rate=0.1, warmup_steps=2, schedule="linear", **changes)
  return config


def test_accumulating_n_micro_batches_equals_one_step_on_their_mean_gradient():
  params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array([0.5])}
  grads = [jax.tree.map(lambda p, i=i: jnp.full_like(p, i + 1.0) * p, params)
           for i in range(4)]
  accumulating, schedule = make_optimizer(_config(accumulate_steps=2), total_steps=8)
  plain, plain_schedule = make_optimizer(_config(), total_steps=4)

  state, plain_state = accumulating.init(params), plain.init(params)
  p, plain_p = params, params
  for i in range(0, 4, 2):
    updates, state = accumulating.update(grads[i], state, p)
    np.testing.assert_array_equal(updates["w"], 0.0)  # no step mid-accumulation
    updates, state = accumulating.update(grads[i + 1], state, p)
    p = jax.tree.map(jnp.add, p, updates)
    mean = jax.tree.map(lambda a, b: (a + b) / 2, grads[i], grads[i + 1])
    plain_updates, plain_state = plain.update(mean, plain_state, plain_p)
    plain_p = jax.tree.map(jnp.add, plain_p, plain_updates)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), p, plain_p)
  # The schedule counts train steps; warm-up and decay count optimizer updates.
  for step in range(8):
    assert schedule(step) == plain_schedule(step // 2)


def test_steps_not_a_multiple_of_the_accumulation_is_a_clear_error():
  with pytest.raises(ValueError, match=r"train.steps \(10\) must be a multiple of "
                     r"optimizer.accumulate_steps \(4\)"):
    make_optimizer(_config(accumulate_steps=4), total_steps=10)

"""Known answers of the loss weightings without a reference implementation to run."""

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax import weighting


def test_scale_invariant_weighs_each_task_by_its_inverse_loss():
  method = weighting.from_spec("scale_invariant")
  losses = jnp.array([0.5, 2.0, 4.0])
  weights, _ = method.update(losses, method.init(3), present_k=jnp.array([1.0, 1.0, 0.0]))
  np.testing.assert_allclose(weights, [2.0, 0.5, 0.0])
  # The gradient of sum w_i L_i is that of sum log L_i: rescaling a loss changes nothing.
  theta = jnp.array([0.3, -1.2])

  def losses_of(theta, scale):
    return jnp.stack([jnp.sum(theta ** 2) + 1.0, scale * (jnp.sum(theta) ** 2 + 1.0)])

  def weighted_gradient(scale):
    weights, _ = method.update(losses_of(theta, scale), method.init(2))
    return jax.grad(lambda t: jnp.sum(weights * losses_of(t, scale)))(theta)

  np.testing.assert_allclose(weighted_gradient(1.0), weighted_gradient(1e3), rtol=1e-5)
  np.testing.assert_allclose(
      weighted_gradient(1.0), jax.grad(lambda t: jnp.sum(jnp.log(losses_of(t, 1.0))))(theta),
      rtol=1e-5)


def test_imtl_l_drives_every_scaled_loss_to_one():
  # With fixed losses, exp(s_i) L_i -> 1: the weights approach 1 / L_i.
  method = weighting.from_spec("imtl_l(learning_rate=0.05)")
  losses = jnp.array([0.25, 1.0, 8.0])
  state = method.init(3)
  step = jax.jit(lambda state: method.update(losses, state))
  first, state = step(state)
  np.testing.assert_allclose(first, [1.0, 1.0, 1.0])  # s starts at 0
  for _ in range(2000):
    weights, state = step(state)
  np.testing.assert_allclose(weights * losses, [1.0, 1.0, 1.0], rtol=2e-2)


def test_imtl_l_leaves_an_absent_task_alone():
  method = weighting.from_spec("imtl_l")
  state = method.init(2)
  present = jnp.array([1.0, 0.0])
  for _ in range(5):
    weights, state = method.update(jnp.array([3.0, 100.0]), state, present_k=present)
  assert float(state.scales_k[1]) == 0.0 and float(weights[1]) == 0.0
  assert float(state.scales_k[0]) < 0.0  # a loss above 1 lowers its weight

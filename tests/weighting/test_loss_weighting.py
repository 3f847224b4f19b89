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


def test_stch_warms_up_on_log_losses_then_follows_the_smooth_tchebycheff_gradient():
  method = weighting.from_spec("stch(mu=0.5, warmup_steps=2)")
  state = method.init(3)
  warmup = [jnp.array([1.0, 2.0, 4.0]), jnp.array([3.0, 2.0, 2.0])]
  for losses in warmup:
    weights, state = method.update(losses, state)
    np.testing.assert_allclose(weights, 1.0 / losses, rtol=1e-6)  # sum log L
  nadir = (warmup[0] + warmup[1]) / 2

  def libmtl_loss(losses):  # LibMTL's STCH.backward after the warm-up
    relative = jnp.log(losses / nadir + 1e-20)
    shifted = relative - jax.lax.stop_gradient(jnp.max(relative))
    return 0.5 * jnp.log(jnp.sum(jnp.exp(shifted / 0.5))) * 3

  losses = jnp.array([0.5, 3.0, 1.0])
  weights, _ = method.update(losses, state)
  np.testing.assert_allclose(weights, jax.grad(libmtl_loss)(losses), rtol=1e-5)
  # The task furthest above its nadir (the second: 3.0 / 2.0) weighs the most per unit loss.
  assert int(jnp.argmax(weights * losses)) == 1

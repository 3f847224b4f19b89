"""Non-finite steps are skipped (the whole state kept) and counted on device."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.training import NonFiniteLossError, TrainState, skip_nonfinite
from mtl_jax.training import nonfinite
from mtl_jax.training.nonfinite import NonFiniteCounter


def _toy_step(state, batch, rng):
  """SGD on sum(w * x) with a stateful 'weighting' that accumulates the loss."""
  del rng
  loss, grads = jax.value_and_grad(lambda p: jnp.sum(p["w"] * batch["x"]))(state.params)
  new = state.replace(step=state.step + 1,
                      params=jax.tree.map(lambda p, g: p - 0.1 * g, state.params, grads),
                      opt_state=state.opt_state + 1,
                      weighting_state=state.weighting_state + loss)
  return new, {"loss": loss, "grad_norm": jnp.sqrt(jnp.sum(grads["w"] ** 2))}


def _state():
  return TrainState(step=jnp.zeros((), jnp.int32), params={"w": jnp.ones(3)},
                    opt_state=jnp.zeros(()), weighting_state=jnp.zeros(()),
                    rng=jax.random.PRNGKey(0))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_nonfinite_batch_keeps_the_whole_state_but_advances_the_step(bad):
  step = jax.jit(skip_nonfinite(_toy_step))
  state = _state()
  skipped_state, metrics = step(state, {"x": jnp.array([1.0, bad, 2.0])}, None)
  assert int(metrics["skipped"]) == 1
  assert int(skipped_state.step) == 1
  for new, old in zip(jax.tree.leaves(skipped_state.replace(step=state.step)),
                      jax.tree.leaves(state)):
    np.testing.assert_array_equal(new, old)
  good_state, metrics = step(skipped_state, {"x": jnp.array([1.0, 2.0, 3.0])}, None)
  assert int(metrics["skipped"]) == 0
  np.testing.assert_allclose(good_state.params["w"], [0.9, 0.8, 0.7])
  assert int(good_state.step) == 2 and float(good_state.weighting_state) == 6.0


def _count(counter, skipped_steps, start=1):
  """Advances the counter's device counts over `skipped_steps` (bools), jitted."""
  advance = jax.jit(nonfinite.advance, static_argnums=3)
  for done, skipped in enumerate(skipped_steps, start=start):
    counter.counts = advance(counter.counts, jnp.int32(skipped), jnp.int32(done), counter.limit)


def test_counter_stops_after_the_limit_in_a_row_and_resets_on_a_good_step():
  counter = NonFiniteCounter(limit=3)
  _count(counter, [True, True, False, True, True])
  counts = counter.check()
  assert (counts.total, counts.in_a_row, counts.stopped_at, counts.last_skipped) == (4, 2, 0, 5)
  _count(counter, [True], start=6)
  with pytest.raises(NonFiniteLossError, match=r"steps 4-6: 3 steps in a row .* \(5 in all\)"):
    counter.check()


def test_counts_freeze_at_the_streak_that_stops_the_run_however_late_they_are_read():
  # The host reads the counts only when it logs: steps after the streak (good or
  # skipped) must not change which streak it reports.
  counter = NonFiniteCounter(limit=2, total=1)
  _count(counter, [False, True, True, False, True, True, True])
  with pytest.raises(NonFiniteLossError, match=r"steps 2-3: 2 steps in a row .* \(3 in all\)"):
    counter.check()


def test_counter_without_a_limit_never_stops():
  counter = NonFiniteCounter(limit=0, total=7, in_a_row=2)
  _count(counter, [True] * 100)
  counts = counter.check()
  assert (counts.total, counts.in_a_row, counts.stopped_at) == (107, 102, 0)


def test_a_step_that_guards_itself_is_passed_through():
  # make_train_step's step reports `skipped` itself (its update sits in lax.cond);
  # wrapping it again must not select between states a second time.
  def self_guarded(state, batch, rng):
    new, metrics = _toy_step(state, batch, rng)
    return new, {**metrics, "skipped": jnp.int32(0)}

  state = _state()
  new, metrics = jax.jit(skip_nonfinite(self_guarded))(state, {"x": jnp.array([1.0, np.nan, 2.0])},
                                                       None)
  assert int(metrics["skipped"]) == 0  # its own verdict, not the wrapper's
  assert np.isnan(np.asarray(new.params["w"])).any()

"""Fixtures shared by the balancing tests of the train step."""

import jax
import pytest

from test_gradients import batch, model, reference


@pytest.fixture(scope="session")
def tiny_setup():
  """A tiny model, a batch, a key, and the per-task gradients (the reference)."""
  the_model = model()
  params = the_model.init(jax.random.PRNGKey(0))
  the_batch, rng = batch(), jax.random.PRNGKey(3)
  return the_model, params, the_batch, rng, reference(the_model, params, the_batch, rng)

"""Fixtures shared by the balancing tests of the train step."""

import jax
import pytest

from helpers import NO_DROPOUT, per_task_gradients, two_task_batch, two_task_model


@pytest.fixture(scope="session")
def tiny_setup():
  """A tiny model (no dropout), a batch, a key, and the per-task gradients (the reference)."""
  model = two_task_model(NO_DROPOUT)
  params = model.init(jax.random.PRNGKey(0))
  batch, rng = two_task_batch(), jax.random.PRNGKey(3)
  return model, params, batch, rng, per_task_gradients(model, params, batch, rng)

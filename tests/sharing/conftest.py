"""Tiny two-task batches for the sharing tests (the root conftest's `two_task_batch`)."""

import pytest


@pytest.fixture(scope="session")
def make_batch(two_task_batch):
  return two_task_batch

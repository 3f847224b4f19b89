import gc
import threading
import time

import jax
import numpy as np
import pytest

from mtl_jax.training.prefetch import Prefetcher


class Counting:
  """A source of batches that knows how many it has given (its 'position')."""

  def __init__(self, count, fail_at=None):
    self.given, self.count, self.fail_at = 0, count, fail_at

  def __iter__(self):
    for i in range(self.count):
      if i == self.fail_at:
        raise ValueError(f"bad batch {i}")
      self.given += 1
      yield {"x": np.full((2, 3), i, np.int32)}


def _prefetch_threads():
  return [t for t in threading.enumerate() if t.name == "prefetch"]


def test_batches_arrive_in_order_on_device_and_the_source_ends():
  source = Counting(5)
  with Prefetcher(iter(source), size=2) as batches:
    got = list(batches)
  assert [int(b["x"][0, 0]) for b in got] == [0, 1, 2, 3, 4]
  assert all(isinstance(b["x"], jax.Array) for b in got)


def test_positions_are_those_of_the_last_batch_handed_out():
  source = Counting(10)
  batches = Prefetcher(iter(source), size=3, positions=lambda: source.given)
  assert batches.positions == 0
  next(batches)
  next(batches)
  deadline = time.time() + 10
  while source.given < 5 and time.time() < deadline:  # the thread runs ahead
    time.sleep(0.01)
  assert source.given >= 5  # 2 handed out, 3 queued, maybe 1 more waiting
  assert batches.positions == 2
  batches.close()


def test_a_source_error_reaches_the_consumer_in_order():
  batches = Prefetcher(iter(Counting(5, fail_at=2)))
  assert [int(next(batches)["x"][0, 0]) for _ in range(2)] == [0, 1]
  with pytest.raises(ValueError, match="bad batch 2"):
    next(batches)
  batches.close()


def test_an_endless_source_stops_when_closed_or_dropped():
  def endless():
    while True:
      yield {"x": np.zeros(1)}

  before = len(_prefetch_threads())
  closed = Prefetcher(endless())
  next(closed)
  closed.close()
  dropped = Prefetcher(endless())
  next(dropped)
  del dropped
  gc.collect()
  deadline = time.time() + 10
  while len(_prefetch_threads()) > before and time.time() < deadline:
    time.sleep(0.05)
  assert len(_prefetch_threads()) == before

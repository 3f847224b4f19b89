"""Background batch preparation: the next batches are built and on device before the step asks.

`Prefetcher` pulls batches from an iterator in a thread and `jax.device_put`s
them, keeping `size` ready, so host work (padding, the host-to-device copy)
overlaps the running step instead of following it. Because the producer runs
ahead of the training loop, the data streams' positions are ahead too: the
prefetcher records a snapshot of them with every batch, and `positions` is
the snapshot of the last batch handed out, which is what a checkpoint must
store for an exact resume.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

import jax

_DONE = object()


def _put(items: queue.Queue, item, stop: threading.Event) -> bool:
  """Puts `item` once there is room; False if stopped first."""
  while not stop.is_set():
    try:
      items.put(item, timeout=0.1)
      return True
    except queue.Full:
      continue
  return False


def _produce(batches, positions, put, items: queue.Queue, stop: threading.Event) -> None:
  try:
    for batch in batches:
      item = (put(batch), positions() if positions else None)
      if not _put(items, item, stop):
        return
    _put(items, _DONE, stop)
  except BaseException as error:  # handed to the consumer, raised there
    _put(items, error, stop)


class Prefetcher:
  """An iterator over `batches`, prepared `size` ahead in a background thread.

  Args:
    batches: the source iterator (e.g. `joint_batches(streams)`).
    size: how many batches to keep ready (on device).
    positions: returns the source's position after the batch it just gave
      (e.g. each stream's `StreamPosition` as a dict); called in the thread
      right after each batch, so it must return a copy.
    put: puts a host batch on device(s), e.g. `Layout.put_batch` to split it
      over a mesh; default `jax.device_put` (JAX's default device).
  """

  def __init__(self, batches: Iterator[Any], size: int = 2,
               positions: Callable[[], Any] | None = None,
               put: Callable[[Any], Any] = jax.device_put):
    if size < 1:
      raise ValueError(f"prefetch size must be at least 1, got {size}")
    self._queue: queue.Queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self.positions = positions() if positions else None
    # The thread holds no reference to `self`, so a dropped Prefetcher is
    # collected and its `__del__` stops the thread (sources are often endless).
    self._thread = threading.Thread(
        target=_produce, name="prefetch", daemon=True,
        args=(batches, positions, put, self._queue, self._stop))
    self._thread.start()

  def __iter__(self) -> "Prefetcher":
    return self

  def __next__(self):
    item = self._queue.get()
    if item is _DONE:
      self._queue.put(_DONE)  # later calls stop too
      raise StopIteration
    if isinstance(item, BaseException):
      self._queue.put(item)
      raise item
    batch, self.positions = item
    return batch

  def close(self) -> None:
    """Stops the thread (it finishes the batch it is building)."""
    self._stop.set()
    self._thread.join()

  def __del__(self):
    self._stop.set()

  def __enter__(self) -> "Prefetcher":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

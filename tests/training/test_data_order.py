"""A task's training order depends on the run's seed and its name, not on the other tasks."""

import datasets
import numpy as np

from mtl_jax.tasks.kinds import EncodedSplit
from mtl_jax.tasks.sources import RawSplit
from mtl_jax.training.loop import make_streams


def _split(n, offset):
  ids = [np.arange(offset, offset + 2 + i % 7, dtype=np.int32) for i in range(n)]
  raw = RawSplit(datasets.Dataset.from_dict({"_line": list(range(n))}), "x")
  return EncodedSplit(ids, [np.zeros_like(x) for x in ids], list(range(n)), raw)


def _labels(stream, steps):
  return [next(stream)["labels"].tolist() for _ in range(steps)]


def test_a_task_sees_the_same_batches_alone_and_beside_other_tasks():
  ner, news = _split(40, 1), _split(30, 100)
  alone = make_streams({"ner": ner}, 4, (8, 16), seed=3)
  joint = make_streams({"news": news, "ner": ner}, 4, (8, 16), seed=3)
  reordered = make_streams({"ner": ner, "news": news}, 4, (8, 16), seed=3)
  # 25 batches: past the first epoch of 10.
  expected = _labels(alone["ner"], 25)
  assert _labels(joint["ner"], 25) == expected
  assert _labels(reordered["ner"], 25) == expected
  # ...and the order does depend on the seed and the name.
  assert _labels(make_streams({"ner": ner}, 4, (8, 16), seed=4)["ner"], 25) != expected
  assert _labels(make_streams({"ner2": ner}, 4, (8, 16), seed=3)["ner2"], 25) != expected

import datasets
import numpy as np
import pytest

from mtl_jax.tasks import batching
from mtl_jax.tasks.kinds import EncodedSplit
from mtl_jax.tasks.sources import RawSplit
from mtl_jax.constants import IGNORE_LABEL


def _split(lengths, token_labels=False):
  ids = [np.arange(1, n + 1, dtype=np.int32) for n in lengths]
  labels = ([np.full(n, 1, np.int32) for n in lengths] if token_labels
            else list(range(len(lengths))))
  raw = RawSplit(datasets.Dataset.from_dict({"_line": list(range(len(lengths)))}), "x")
  return EncodedSplit(ids, [np.zeros_like(x) for x in ids], labels, raw,
                      word_ids=[np.zeros_like(x) for x in ids] if token_labels else None)


def test_pad_batch_shapes_masks_and_ignored_labels():
  split = _split([3, 5], token_labels=True)
  batch = batching.pad_batch(split, [0, 1], length=8, batch_size=3)
  assert batch["input_ids"].shape == (3, 8)
  np.testing.assert_array_equal(batch["attention_mask"].sum(1), [3, 5, 0])
  assert (batch["labels"][0, 3:] == IGNORE_LABEL).all()
  assert (batch["labels"][2] == IGNORE_LABEL).all()


def test_stream_uses_only_bucket_shapes_and_sees_every_example_once_per_epoch():
  lengths = [3, 9, 17, 30, 5, 12, 2, 31, 8, 16]
  split = _split(lengths)
  stream = batching.TaskStream(split, batch_size=3, buckets=(8, 16, 32), seed=0)
  seen = []
  while stream.position.epoch == 0:
    batch = next(stream)
    assert batch["input_ids"].shape[0] == 3
    assert batch["input_ids"].shape[1] in (8, 16, 32)
    real = batch["attention_mask"][:, 0] == 1
    assert (batch["attention_mask"].sum(1)[real] <= batch["input_ids"].shape[1]).all()
    seen += list(batch["labels"][real])
  assert sorted(seen) == list(range(len(lengths)))


def test_stream_order_is_a_function_of_the_seed_and_resumes_exactly():
  split = _split(list(range(2, 40)))

  def take(stream, n):
    return [next(stream)["input_ids"] for _ in range(n)]

  a = take(batching.TaskStream(split, 4, (16, 32, 64), seed=1), 25)
  b = take(batching.TaskStream(split, 4, (16, 32, 64), seed=1), 25)
  c = take(batching.TaskStream(split, 4, (16, 32, 64), seed=2), 25)
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, c))
  first = batching.TaskStream(split, 4, (16, 32, 64), seed=1)
  take(first, 13)  # crosses into the second epoch
  resumed = batching.TaskStream(split, 4, (16, 32, 64), seed=1,
                                position=batching.StreamPosition(**vars(first.position)))
  assert all(np.array_equal(x, y) for x, y in zip(take(resumed, 12), a[13:]))


def test_joint_batches_share_one_length():
  streams = {"short": batching.TaskStream(_split([2, 3]), 2, (4, 8), seed=0),
             "long": batching.TaskStream(_split([7, 8], token_labels=True), 2, (4, 8), seed=0)}
  batch = next(batching.joint_batches(streams))
  assert batch["short"]["input_ids"].shape == batch["long"]["input_ids"].shape == (2, 8)


def test_eval_batches_cover_every_example_once():
  split = _split([5, 1, 9, 3, 7])
  indices = np.concatenate([i for i, _ in batching.eval_batches(split, 2, (4, 8, 16))])
  assert sorted(indices) == [0, 1, 2, 3, 4]


def test_too_long_example_is_an_error():
  with pytest.raises(ValueError, match="longer than the largest bucket"):
    batching.bucket_length(40, (8, 16))


@pytest.mark.parametrize("token_labels", [False, True])
def test_memory_mapped_and_in_memory_rows_agree(monkeypatch, token_labels):
  """Large splits gather rows from the Arrow table, small ones from flat arrays."""
  from mtl_jax.tasks.kinds import base
  split = _split([3, 9, 5, 12, 7], token_labels=token_labels)
  in_memory = batching.pad_batch(split, [4, 0, 3], length=16, batch_size=4)
  monkeypatch.setattr(base, "IN_MEMORY_BYTES", 0)
  mapped = _split([3, 9, 5, 12, 7], token_labels=token_labels)
  assert mapped._flat is None
  from_table = batching.pad_batch(mapped, [4, 0, 3], length=16, batch_size=4)
  for key in in_memory:
    np.testing.assert_array_equal(in_memory[key], from_table[key])


def _mask(lengths, length):
  return (np.arange(length)[None] < np.asarray(lengths)[:, None]).astype(np.int32)


def test_token_capacity_rounds_the_real_tokens_up_to_a_part_of_the_slots():
  # Two tasks of 4 rows x 8: 64 slots; 4 parts: multiples of 16.
  assert batching.token_capacity([_mask([8, 3, 0, 1], 8), _mask([2, 2, 2, 2], 8)], 4) == 32
  assert batching.token_capacity([_mask([8, 8, 0, 0], 8), _mask([0] * 4, 8)], 4) == 16
  assert batching.token_capacity([_mask([8] * 4, 8)] * 2, 4) == 64
  assert batching.token_capacity([_mask([0] * 4, 8)] * 2, 4) == 16  # none real: one part
  # 5 slots in 3 parts of 2 (rounded up); never more than the slots.
  assert batching.token_capacity([_mask([3], 5)], 3) == 4
  assert batching.token_capacity([_mask([5], 5)], 3) == 5


def test_with_token_slots_adds_an_empty_array_whose_rows_are_the_capacity():
  from mtl_jax.constants import TOKEN_SLOTS

  batch = {"a": {"attention_mask": _mask([8, 3], 8)}, "b": {"attention_mask": _mask([1, 0], 8)}}
  slotted = batching.with_token_slots(batch, 4)
  assert slotted[TOKEN_SLOTS].shape == (16, 0)  # 12 real of 32, in parts of 8
  assert slotted[TOKEN_SLOTS].nbytes == 0
  assert slotted["a"] is batch["a"] and slotted["b"] is batch["b"] and TOKEN_SLOTS not in batch


def test_with_token_slots_for_passes_of_one_task_each_takes_the_largest_tasks_capacity():
  from mtl_jax.constants import TASK_TOKEN_SLOTS, TOKEN_SLOTS

  # Each task: 2 rows x 8 = 16 slots in 4 parts of 4; 11 real -> 12, 1 real -> 4.
  batch = {"a": {"attention_mask": _mask([8, 3], 8)}, "b": {"attention_mask": _mask([1, 0], 8)}}
  slotted = batching.with_token_slots(batch, 4, each_task=True)
  assert slotted[TASK_TOKEN_SLOTS].shape == (12, 0) and TOKEN_SLOTS not in slotted

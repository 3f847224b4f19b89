"""Fixed-shape batches: examples padded to a few length buckets.

One compiled step serves a whole run because every batch has one of a few
static shapes: `batch_size` rows (padding rows have an all-zero attention
mask) by a bucket length. Training order is a pure function of
(seed, epoch), and a stream's position is two integers, so a run can resume
exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Iterator, Mapping, Sequence

import numpy as np

from mtl_jax.tasks.kinds import EncodedSplit
from mtl_jax.constants import IGNORE_LABEL, TASK_TOKEN_SLOTS, TOKEN_SLOTS

Batch = dict[str, np.ndarray]
# The arrays with a token axis in every batch.
TOKEN_KEYS = ("input_ids", "token_type_ids", "attention_mask")


def bucket_length(length: int, buckets: Sequence[int]) -> int:
  """The smallest bucket that holds `length` tokens."""
  for bucket in buckets:
    if length <= bucket:
      return bucket
  raise ValueError(f"an example of {length} tokens is longer than the largest "
                   f"bucket {buckets[-1]}; raise the buckets or lower max_length")


def bucket_lengths(lengths: np.ndarray, buckets: Sequence[int]) -> np.ndarray:
  """`bucket_length` of many lengths at once (sorted buckets)."""
  lengths = np.asarray(lengths)
  if len(lengths) and lengths.max() > buckets[-1]:
    bucket_length(int(lengths.max()), buckets)  # raises, naming the length
  return np.asarray(buckets)[np.searchsorted(buckets, lengths)]


def pad_batch(split: EncodedSplit, indices: Sequence[int], length: int,
              batch_size: int) -> Batch:
  """Stacks examples into [batch_size, length] arrays, padding rows and tokens.

  Args:
    split: the tokenized examples.
    indices: which examples (at most `batch_size`).
    length: the padded length (a bucket).
    batch_size: rows of the batch; rows past `len(indices)` are padding.

  Returns:
    `input_ids`, `token_type_ids`, `attention_mask` ([b, l] int32) and
    `labels`: [b, l] int32 for tagging (IGNORE_LABEL on padded and
    unlabelled tokens), else one label per row: [b] int32 class ids, [b]
    float32 regression targets, or [b, labels] int32 multi-hot rows. Splits
    with a decoder side (seq2seq) have their fixed-length `decoder_*` arrays
    (`split.decoder_arrays`) instead of `labels`. With no `indices`, every
    row is padding (loss 0).
  """
  rows = split.rows(indices)
  input_ids = np.zeros((batch_size, length), np.int32)
  token_type_ids = np.zeros((batch_size, length), np.int32)
  attention_mask = np.zeros((batch_size, length), np.int32)
  for row, (ids, types) in enumerate(zip(rows["input_ids"], rows["token_type_ids"])):
    input_ids[row, :len(ids)] = ids
    token_type_ids[row, :len(ids)] = types
    attention_mask[row, :len(ids)] = 1
  batch = {"input_ids": input_ids, "token_type_ids": token_type_ids,
           "attention_mask": attention_mask}
  decoder_arrays = getattr(split, "decoder_arrays", None)
  if decoder_arrays is not None:  # the targets feed the decoder
    return {**batch, **decoder_arrays(rows["labels"], batch_size)}
  if split.token_labels:
    labels = np.full((batch_size, length), IGNORE_LABEL, np.int32)
    for row, tags in enumerate(rows["labels"]):
      labels[row, :len(tags)] = tags
  else:
    values = rows["labels"]
    if not isinstance(values, np.ndarray) or values.dtype == object:  # multi-hot rows
      # An all-padding batch takes its label shape from one example.
      values = np.stack([np.asarray(v) for v in (
          values if len(values) else split.rows([0])["labels"])])[:len(values)]
    dtype = np.float32 if np.issubdtype(values.dtype, np.floating) else np.int32
    labels = np.zeros((batch_size,) + values.shape[1:], dtype)
    labels[:len(values)] = values
  return {**batch, "labels": labels}


def pad_to_length(batch: Batch, length: int, token_labels: bool = True) -> Batch:
  """Pads a batch's token axis to `length`.

  Args:
    batch: a task's batch.
    length: the new length (at least the current one).
    token_labels: whether `labels` has a token axis (tagging) to pad, with
      IGNORE_LABEL; other labels ([b], [b, labels]) are left as they are.
  """
  current = batch["input_ids"].shape[1]
  if current == length:
    return batch
  out = dict(batch)
  for key in TOKEN_KEYS + (("labels",) if token_labels else ()):
    fill = IGNORE_LABEL if key == "labels" else 0
    out[key] = np.pad(batch[key], ((0, 0), (0, length - current)), constant_values=fill)
  return out


def token_capacity(masks: Sequence[np.ndarray], parts: int) -> int:
  """The rows of a step's compact token buffer: its real tokens, rounded up.

  Rounded up to a multiple of 1/`parts` of the step's slots (rows x length),
  so a length bucket compiles at most `parts` programs.

  Args:
    masks: every task's attention mask [b, l] in the step (one length).
    parts: how many capacities a length may take (> 0).

  Returns:
    The capacity, between the real tokens and the slots (at least 1).
  """
  slots = sum(mask.size for mask in masks)
  real = sum(int(np.count_nonzero(mask)) for mask in masks)
  unit = max(-(-slots // parts), 1)
  return min(max(-(-real // unit), 1) * unit, max(slots, 1))


def with_token_slots(batch: Mapping[str, Batch], parts: int, each_task: bool = False) -> dict:
  """A step batch ({task: batch}) with the capacity of its compact token buffer.

  Args:
    batch: the step's batch.
    parts: `train.token_buckets` (see `token_capacity`).
    each_task: the step encodes each task's rows apart: one capacity for every
      task's pass (the largest task's, rounded on its own slots), under
      `TASK_TOKEN_SLOTS`; else one for all tasks' rows together, under `TOKEN_SLOTS`.
  """
  masks = [b["attention_mask"] for b in batch.values()]
  if each_task:
    capacity = max(token_capacity([mask], parts) for mask in masks)
    return {**batch, TASK_TOKEN_SLOTS: np.zeros((capacity, 0), np.int8)}
  return {**batch, TOKEN_SLOTS: np.zeros((token_capacity(masks, parts), 0), np.int8)}


def stream_seed(seed: int, task_name: str) -> int:
  """The seed of a task's training stream: the run's seed and the task's name.

  Keyed by the name, not the task's place in the run, so a task sees the same
  examples in the same order whichever tasks train beside it (a single-task
  baseline and the multi-task run it is compared with).
  """
  return seed * 2**32 + zlib.crc32(task_name.encode("utf-8"))


@dataclasses.dataclass
class StreamPosition:
  """Where a task's training stream is: the epoch and the batch within it."""

  epoch: int = 0
  batch: int = 0


class TaskStream:
  """An endless, shuffled, bucketed stream of one task's training batches.

  Each epoch shuffles the examples (seeded by `(seed, epoch)`), groups them
  by bucket, cuts each group into batches and shuffles the batch order. The
  stream is resumable from `position`.
  """

  def __init__(self, split: EncodedSplit, batch_size: int, buckets: Sequence[int],
               seed: int, position: StreamPosition | None = None):
    if len(split) == 0:
      raise ValueError("cannot stream an empty split")
    self.split = split
    self.batch_size = batch_size
    self.buckets = tuple(sorted(buckets))
    self.seed = seed
    self.position = position or StreamPosition()
    self._bucket_of = bucket_lengths(split.lengths, self.buckets)
    self._plan_epoch = -1
    self._plan: list[np.ndarray] = []

  def _epoch_plan(self, epoch: int) -> list[np.ndarray]:
    if self._plan_epoch != epoch:
      rng = np.random.default_rng([self.seed, epoch])
      order = rng.permutation(len(self.split))
      batches = []
      for bucket in self.buckets:
        members = order[self._bucket_of[order] == bucket]
        batches += [members[i:i + self.batch_size]
                    for i in range(0, len(members), self.batch_size)]
      self._plan = [batches[i] for i in rng.permutation(len(batches))]
      self._plan_epoch = epoch
    return self._plan

  def __iter__(self) -> Iterator[Batch]:
    return self

  def __next__(self) -> Batch:
    plan = self._epoch_plan(self.position.epoch)
    indices = plan[self.position.batch]
    self.position.batch += 1
    if self.position.batch == len(plan):
      self.position = StreamPosition(self.position.epoch + 1, 0)
    length = int(self._bucket_of[indices].max())
    return pad_batch(self.split, indices, length, self.batch_size)

  def empty_batch(self, length: int) -> Batch:
    """A batch of this stream's shape with only padding rows (loss 0); the stream stays put."""
    return pad_batch(self.split, [], length, self.batch_size)


def joint_batches(streams: Mapping[str, TaskStream]) -> Iterator[dict[str, Batch]]:
  """Every task in every step, padded to one common bucket length.

  Sharing one length across the tasks of a step keeps the number of
  compiled shapes to the number of buckets (not its power).
  """
  while True:
    batches = {name: next(stream) for name, stream in streams.items()}
    length = max(b["input_ids"].shape[1] for b in batches.values())
    yield {name: pad_to_length(b, length, streams[name].split.token_labels)
           for name, b in batches.items()}


def eval_batches(split: EncodedSplit, batch_size: int, buckets: Sequence[int]
                 ) -> Iterator[tuple[np.ndarray, Batch]]:
  """Each example once, in length order (little padding); yields (indices, batch)."""
  lengths = split.lengths
  order = np.argsort(lengths, kind="stable")
  for start in range(0, len(order), batch_size):
    indices = order[start:start + batch_size]
    length = bucket_length(int(lengths[indices].max()), sorted(buckets))
    yield indices, pad_batch(split, indices, length, batch_size)

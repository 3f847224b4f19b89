"""What every kind shares: the tokenized split, the kind contract, per-part metrics.

A kind is the data side of one task shape: the raw fields it reads from a
source, how examples become token ids and label ids, how many outputs its
head has and how its predictions are decoded and scored on the host. Its
head, loss and on-device prediction are the model layer's
(`mtl_jax.heads.OUTPUTS`, chosen by `base_name`). Kinds are small frozen
dataclasses whose fields are the task's `kind_options` (and its `metrics`
selection).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any, Callable, ClassVar, Mapping, Sequence

import datasets
from datasets.fingerprint import Hasher
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtl_jax.tasks import tokenization
from mtl_jax.tasks.sources import LINE, PART, DataError, RawSplit

log = logging.getLogger(__name__)

# Examples tokenized at a time (one `datasets.map` batch).
ENCODE_BATCH = 1000
# Part of every encoded split's cache key: bump it when the encoding changes.
ENCODING_VERSION = 1
# Encoded splits up to this size are gathered from in-memory arrays; larger
# ones stay memory-mapped (see `EncodedSplit.rows`).
IN_MEMORY_BYTES = 256 * 2**20


class EncodedSplit:
  """One split of a task, tokenized: one row per example, in an Arrow table.

  Splits read through `datasets` from files are tokenized by `datasets.map`
  into an Arrow cache file next to the source's, so a large split is
  memory-mapped and is not tokenized again by the next run with the same
  tokenizer, labels and length. Batching reads rows by index with `rows`
  (from flat in-memory arrays for splits up to IN_MEMORY_BYTES: a few
  bytes per token, against about 3 kB per example as Python lists); the
  whole-column properties (`labels`, ...) are for evaluation.

  Columns: `input_ids`, `token_type_ids` (int32 per sub-word), `labels` (an
  int class id, a float target, a multi-hot vector, or int32 sub-word tags
  with IGNORE_LABEL where unlabelled), `length`, and for tagging `word_ids`
  (word index per sub-word, -1 for special tokens).
  """

  def __init__(self, input_ids: Sequence[np.ndarray], token_type_ids: Sequence[np.ndarray],
               labels: Sequence[Any], raw: RawSplit,
               word_ids: Sequence[np.ndarray] | None = None, num_truncated: int = 0):
    """An in-memory split from ragged arrays (one entry per example)."""
    columns = {"input_ids": [np.asarray(x, np.int32) for x in input_ids],
               "token_type_ids": [np.asarray(x, np.int32) for x in token_type_ids],
               "labels": list(labels),
               "length": [len(x) for x in input_ids]}
    if word_ids is not None:
      columns["word_ids"] = [np.asarray(x, np.int32) for x in word_ids]
    self._init(datasets.Dataset.from_dict(columns), raw, num_truncated)

  @classmethod
  def from_dataset(cls, dataset: datasets.Dataset, raw: RawSplit,
                   num_truncated: int = 0) -> "EncodedSplit":
    """A split over an encoded `datasets.Dataset` (columns as in the class docstring)."""
    split = cls.__new__(cls)
    split._init(dataset, raw, num_truncated)
    return split

  def _init(self, dataset: datasets.Dataset, raw: RawSplit, num_truncated: int) -> None:
    self.dataset = dataset
    self.raw = raw
    self.num_truncated = num_truncated
    self._arrow = dataset.with_format("arrow")
    self.token_labels = "word_ids" in dataset.column_names

  def __len__(self) -> int:
    return len(self.dataset)

  @functools.cached_property
  def lengths(self) -> np.ndarray:
    """Sub-word tokens per example: [n] int64."""
    return self._arrow[:]["length"].to_numpy().astype(np.int64)

  def rows(self, indices: Sequence[int]) -> dict[str, Sequence[Any]]:
    """The columns of some examples: ragged columns as lists of arrays."""
    if self._flat is None:  # a large split: read from the memory-mapped table
      table = self._arrow[[int(i) for i in indices]]
      return {name: _to_numpy(table.column(name)) for name in table.column_names}
    out = {}
    for name, (values, offsets) in self._flat.items():
      out[name] = (values[indices] if offsets is None else
                   [values[offsets[i]:offsets[i + 1]] for i in indices])
    return out

  @functools.cached_property
  def _flat(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]] | None:
    """Each column as flat values (+ row offsets for ragged ones), if small.

    Gathering rows from flat arrays is several times faster than from the
    (chunked) Arrow table, and costs only the table's own size in memory,
    so splits up to IN_MEMORY_BYTES are read into memory once.
    """
    if self.dataset.data.nbytes > IN_MEMORY_BYTES:
      return None
    table = self._arrow[:]
    flat = {}
    for name in table.column_names:
      array = table.column(name).combine_chunks()
      if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        offsets = array.offsets.to_numpy()
        flat[name] = (array.flatten().to_numpy(), offsets - offsets[0])
      else:
        flat[name] = (array.to_numpy(zero_copy_only=False), None)
    return flat

  def column(self, name: str) -> Sequence[Any]:
    """A whole column: a numpy array, or an object array of arrays when ragged."""
    return _to_numpy(self._arrow[:][name])

  @property
  def input_ids(self) -> Sequence[np.ndarray]:
    return self.column("input_ids")

  @property
  def token_type_ids(self) -> Sequence[np.ndarray]:
    return self.column("token_type_ids")

  @property
  def labels(self) -> Sequence[Any]:
    return self.column("labels")

  @property
  def word_ids(self) -> Sequence[np.ndarray] | None:
    return self.column("word_ids") if self.token_labels else None


def _to_numpy(column: pa.ChunkedArray) -> np.ndarray:
  # List columns become object arrays of arrays.
  return column.combine_chunks().to_numpy(zero_copy_only=False)


def encode_split(raw: RawSplit, encode_batch: Callable[[Mapping[str, list]], dict],
                 cache_key: tuple) -> EncodedSplit:
  """Tokenizes a raw split with `datasets.map` (cached on disk for file-backed data).

  Args:
    raw: the raw split.
    encode_batch: maps a batch of raw columns to the encoded columns plus a
      boolean `truncated`; raises DataError for a bad example.
    cache_key: everything the encoding depends on besides the raw data (the
      kind and its options, labels, max length, tokenizer), hashed with the
      raw split's fingerprint into the cache file's name.

  Returns:
    The encoded split.
  """
  if not len(raw.dataset):
    raise DataError(f"{raw.path}: no examples to encode")
  fingerprint = Hasher.hash((raw.dataset._fingerprint, ENCODING_VERSION) + cache_key)  # pylint: disable=protected-access
  kwargs = dict(batched=True, batch_size=ENCODE_BATCH,
                remove_columns=raw.dataset.column_names, new_fingerprint=fingerprint,
                desc="tokenize")
  try:
    encoded = raw.dataset.map(encode_batch, **kwargs)
  except PermissionError as error:  # the source's cache folder is read-only
    log.warning("%s: cannot write the tokenized cache (%s); tokenizing in memory",
                raw.path, error)
    encoded = raw.dataset.map(encode_batch, keep_in_memory=True, **kwargs)
  truncated = encoded.with_format("arrow")[:]["truncated"]
  num_truncated = int(pc.sum(truncated).as_py() or 0)
  return EncodedSplit.from_dataset(encoded.remove_columns("truncated"), raw,
                                   num_truncated)


def token_columns(encoded: tokenization.Encoded) -> dict[str, list]:
  """The token columns of an encoded batch."""
  columns = {"input_ids": encoded.input_ids, "token_type_ids": encoded.token_type_ids,
             "length": [len(x) for x in encoded.input_ids],
             "truncated": encoded.truncated}
  if encoded.word_ids is not None:
    columns["word_ids"] = encoded.word_ids
  return columns


def locations(where: Callable[[int, str | None], str], batch: Mapping[str, list]
              ) -> list[str]:
  """'file: line N' for each example of a raw batch (`where` is `RawSplit.locator()`)."""
  parts = batch.get(PART, [None] * len(batch[LINE]))
  return [where(line, part) for line, part in zip(batch[LINE], parts)]


def label_ids(values: Sequence[Any], index: Mapping[str, int], where: Sequence[str],
              what: str = "label") -> list[int]:
  """Label strings -> ids; an unknown label is an error naming its example."""
  ids = []
  for value, at in zip(values, where):
    key = str(value)
    if key not in index:
      raise DataError(f"{at}: unknown {what} {key!r}; the task's labels are "
                      f"{sorted(index)}")
    ids.append(index[key])
  return ids


def natural(label: str):
  """Sorts '2' before '10' when labels are numbers, else alphabetically."""
  try:
    return (0, float(label), label)
  except ValueError:
    return (1, 0.0, label)


@dataclasses.dataclass(frozen=True)
class Kind:
  """The contract of a task kind (see the module docstring).

  Subclasses set `base_name`, `available_metrics` and `default_metrics`,
  and implement `fields`, `label_vocab`, `texts`, `encode`, `score`,
  `raw_inputs` and `decode`.

  Attributes:
    metrics: the metrics to report (None: the kind's defaults).
  """

  base_name: ClassVar[str] = ""
  available_metrics: ClassVar[tuple[str, ...]] = ()
  default_metrics: ClassVar[tuple[str, ...]] = ()
  # Fewer labels in the train split is an error (one class cannot be learnt).
  min_labels: ClassVar[int] = 1

  metrics: tuple[str, ...] | None = None

  def __post_init__(self):
    if self.metrics is not None:
      object.__setattr__(self, "metrics", tuple(self.metrics))
      unknown = [m for m in self.metrics if m not in self.available_metrics]
      if unknown:
        raise ValueError(f"{self.name}: unknown metric(s) {unknown}; this kind "
                         f"reports {list(self.available_metrics)}")

  @property
  def name(self) -> str:
    return self.base_name

  @property
  def metric_names(self) -> tuple[str, ...]:
    return self.metrics if self.metrics is not None else self.default_metrics

  @property
  def main_metric(self) -> str:
    return self.metric_names[0]

  def main_metric_in(self, results) -> str:
    """The main metric among the metrics a run reported (a kind may report fewer)."""
    del results
    return self.main_metric

  def num_outputs(self, labels: Sequence[str], vocab_size: int) -> int:
    """The head's output size: one per label (a text-generating kind: the vocabulary)."""
    del vocab_size
    return len(labels)

  def evaluate(self, predictions: list[Any], split: EncodedSplit,
               labels: Sequence[str]) -> dict[str, float]:
    """The selected metrics; for a split with parts, each as `{metric}_{part}`."""
    parts = split.raw.parts
    if parts is None:
      return self.score(predictions, split, labels, np.arange(len(split)))
    results = {}
    for part in dict.fromkeys(parts.tolist()):
      scores = self.score(predictions, split, labels, np.flatnonzero(parts == part))
      results.update({f"{metric}_{part}": value for metric, value in scores.items()})
    return results

  def score(self, predictions: list[Any], split: EncodedSplit, labels: Sequence[str],
            indices: np.ndarray) -> dict[str, float]:
    """The selected metrics over the examples at `indices`."""
    raise NotImplementedError

  def decode_scores(self, scores: list[Any], split: EncodedSplit, labels: Sequence[str]
                    ) -> list[Any]:
    """Each example's {label: probability} (one row of label scores per example)."""
    del split
    return [{label: float(p) for label, p in zip(labels, row)} for row in scores]

  def show(self, prediction: Any) -> str:
    """One decoded prediction as text (the CLI's output)."""
    return str(prediction)

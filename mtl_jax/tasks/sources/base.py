"""The source contract: `Source`, `RawSplit`, `read_split` and the readers' registry.

Every source yields a `datasets.Dataset` with the task kind's normalised
fields (`text`, `text_pair`, `label`, `tokens`, `tags`, ...) plus `_line`,
where each example came from (a file line, or a row number of a hub or TFDS
split), so later errors can name it. A split may have named parts (MNLI's
matched and mismatched dev sets): they are read one by one and concatenated,
with a `_part` column that evaluation groups by.

Structural problems (a missing file, a wrong column count, an empty field)
raise `DataError` naming the file and line; with `skip_bad_rows=True` such
rows are skipped and counted instead, never dropped silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import os
from typing import Any, Callable, Mapping

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtl_jax.registry import Registry, UnknownNameError

log = logging.getLogger(__name__)

LINE = "_line"
PART = "_part"
# The split a source's `holdout` carves out of its train split (model selection).
HELDOUT = "heldout"
# Formats whose splits are local files (the others name hub or TFDS splits).
FILE_FORMATS = ("csv", "tsv", "jsonl", "parquet", "conll")
# Rows checked at a time, so a large split is never held in Python lists.
CHECK_BATCH = 10_000
# Why a field may be empty, for the error message.
_EMPTY_HINTS = {"text_pair": " (a sentence-pair task needs a second text on every row)"}


class DataError(ValueError):
  """A data file or row that cannot be used, with where and why."""


@dataclasses.dataclass(frozen=True)
class Source:
  """Where a task's examples are and how to read them.

  Attributes:
    format: 'csv', 'tsv', 'jsonl', 'parquet', 'conll' (files), 'hf' (Hugging
      Face `datasets`: a hub name or local files) or 'tfds' (a prepared
      TensorFlow Datasets dataset).
    splits: our split name ('train', 'eval', ...) -> a file path (file
      formats) or the source's split name ('validation', 'train[:90%]'). A
      split may instead map part names to these (e.g. MNLI's eval split
      `{'matched': ..., 'mismatched': ...}`); metrics are then reported per
      part.
    columns: our field name -> the source's column (a name, or a 0-based
      index for header-less files and CoNLL). Fields left out use their own
      name as the column name.
    header: whether CSV/TSV files start with a header row.
    skip_bad_rows: skip (and count) malformed rows instead of failing.
    options: format-specific reader options: `quoting`, `encoding` (CSV/TSV);
      `path`, `name` and other `datasets.load_dataset` arguments (hf);
      `name` + `data_dir`, or `path` (tfds); `class_labels` ('names' or
      'ids': how hf/tfds class-label features become label strings).
    holdout: a fraction (0 <= f < 1) of the train split's examples held out
      for choosing settings: they form the split 'heldout' and leave
      'train'. Which examples is fixed (a seeded draw over the rows, the
      same in every run and seed), so every setting of a sweep is chosen on
      the same slice, never on the split a report scores.
  """

  format: str
  splits: Mapping[str, Any]
  columns: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  header: bool = True
  skip_bad_rows: bool = False
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  holdout: float = 0.0

  def __post_init__(self):
    if self.format not in READERS:
      raise UnknownNameError(READERS.unknown(self.format))
    if not (isinstance(self.holdout, (int, float)) and 0.0 <= self.holdout < 1.0):
      raise ValueError(f"source holdout must be a fraction in [0, 1), got {self.holdout!r}")
    if self.holdout and HELDOUT in self.splits:
      raise ValueError(f"a source with holdout makes its own {HELDOUT!r} split; "
                       f"rename the split {HELDOUT!r} of `splits`")

  def missing_files(self) -> list[str]:
    """'split: path' of each split whose file does not exist (file formats; else [])."""
    if self.format not in FILE_FORMATS:
      return []
    missing = []
    for split in self.splits:
      paths = self.path(split)
      for path in (paths.values() if isinstance(paths, dict) else [paths]):
        if not os.path.exists(path):
          missing.append(f"{split}: {path}")
    return missing

  def has_split(self, split: str) -> bool:
    """Whether `split` can be read (a split of `splits`, or 'heldout' with a holdout)."""
    return split in self.splits or (split == HELDOUT and self.holdout > 0)

  def target(self, split: str) -> str | dict[str, str]:
    """What a split points at: a path or split name, or {part: path or split name}."""
    if split not in self.splits:
      raise KeyError(f"no {split!r} split; this source has "
                     f"{', '.join(self.splits) or 'no splits'}")
    value = self.splits[split]
    if isinstance(value, Mapping):
      return {str(part): str(v) for part, v in value.items()}
    return str(value)

  def path(self, split: str) -> str | dict[str, str]:
    """A file format's path of a split (user paths expanded), or {part: path}."""
    target = self.target(split)
    if isinstance(target, dict):
      return {part: os.path.expanduser(p) for part, p in target.items()}
    return os.path.expanduser(target)


@dataclasses.dataclass
class RawSplit:
  """The examples of one split, and how many malformed rows were skipped.

  Attributes:
    dataset: the normalised fields, `_line` and (multi-part splits) `_part`.
    path: the file (or 'hf:...' / 'tfds:...' name) the examples came from.
    num_skipped: malformed rows skipped (`skip_bad_rows`).
    unit: what `_line` counts: 'line' (files) or 'row' (hub and TFDS splits).
    part_paths: for multi-part splits, each part's path.
  """

  dataset: datasets.Dataset
  path: str
  num_skipped: int = 0
  unit: str = "line"
  part_paths: Mapping[str, str] = dataclasses.field(default_factory=dict)

  def where(self, line: int, part: str | None = None) -> str:
    """'file: line N', the prefix of an error about one example."""
    return self.locator()(line, part)

  def locator(self) -> Callable[[int, str | None], str]:
    """`where` as a small picklable function (for `datasets.map` workers)."""
    return functools.partial(_where, self.path, self.unit, dict(self.part_paths))

  def column(self, name: str) -> list:
    """A whole column as a Python list (read through Arrow: fast)."""
    return column_values(self.dataset, name)

  @property
  def parts(self) -> np.ndarray | None:
    """Each example's part name, or None for a single-part split."""
    if PART not in self.dataset.column_names:
      return None
    return np.asarray(self.column(PART))


def _where(path: str, unit: str, part_paths: Mapping[str, str], line: int,
           part: str | None = None) -> str:
  return f"{part_paths.get(part, path)}: {unit} {line}"


Reader = Callable[[Source, str, tuple[str, ...]], RawSplit]
READERS: Registry[Reader] = Registry("source format")


def register_reader(*formats: str):
  """Decorator: `reader(source, target, fields) -> RawSplit` for the formats."""

  def decorator(reader: Reader) -> Reader:
    for name in formats:
      READERS.register(name, reader)
    return reader

  return decorator


def read_split(source: Source, split: str, fields: tuple[str, ...]) -> RawSplit:
  """Reads one split of a source into the given normalised fields.

  Args:
    source: where and how to read.
    split: which split.
    fields: the kind's fields; list-valued fields ('tokens', 'tags') come
      from CoNLL files (or list columns of hf/tfds/jsonl/parquet sources).

  Returns:
    The split, with `fields` and `_line` columns (and `_part` for a split
    with parts).

  Raises:
    FileNotFoundError: the split's file does not exist.
    DataError: the data or a row is malformed (file and line named).
  """
  if source.holdout and split in ("train", HELDOUT):
    return _held_out(_read(source, "train", fields), source.holdout, split == HELDOUT)
  if split == HELDOUT:
    raise KeyError(f"no {HELDOUT!r} split: set the source's holdout (a fraction of train)")
  return _read(source, split, fields)


def _held_out(raw: RawSplit, fraction: float, held_out: bool) -> RawSplit:
  """The held-out rows of a train split (or the rest); rows keep their line numbers."""
  n = len(raw.dataset)
  count = int(round(fraction * n))
  if not 0 < count < n:
    raise DataError(f"{raw.path}: holdout {fraction} of {n} examples leaves "
                    f"{count} held out and {n - count} to train; both need at least one")
  # A fixed draw (not the run's seed): every run and seed holds out the same rows.
  chosen = np.zeros(n, bool)
  chosen[np.random.default_rng(0).permutation(n)[:count]] = True
  rows = np.flatnonzero(chosen if held_out else ~chosen)
  return dataclasses.replace(raw, dataset=raw.dataset.select(rows))


def _read(source: Source, split: str, fields: tuple[str, ...]) -> RawSplit:
  target = source.target(split)
  reader = READERS[source.format]
  if not isinstance(target, dict):
    return reader(source, target, fields)
  raws = {part: reader(source, t, fields) for part, t in target.items()}
  pieces = [raw.dataset.add_column(PART, [part] * len(raw.dataset))
            for part, raw in raws.items()]
  first = next(iter(raws.values()))
  return RawSplit(datasets.concatenate_datasets(pieces),
                  " + ".join(raw.path for raw in raws.values()),
                  sum(raw.num_skipped for raw in raws.values()), first.unit,
                  {part: raw.path for part, raw in raws.items()})


def column_values(dataset: datasets.Dataset, name: str) -> list:
  """A column as a Python list, converted by Arrow (per-row access is slow)."""
  return dataset.with_format("arrow")[:][name].to_pylist()


def select_fields(dataset: datasets.Dataset, source: Source, where: str,
                  fields: tuple[str, ...]) -> datasets.Dataset:
  """Keeps the source columns of `fields` (and `_line`), renamed to the fields.

  Raises:
    DataError: a field's column does not exist (the columns are listed).
  """
  names = [n for n in dataset.column_names if n not in (LINE, PART)]
  rename = {}
  for field in fields:
    column = source.columns.get(field, field)
    if isinstance(column, int) and not isinstance(column, bool):
      if not -len(names) <= column < len(names):
        raise DataError(f"{where}: no column {column} for field {field!r}; the data "
                        f"has {len(names)} columns: {names}")
      column = names[column]
    if column not in names:
      close = difflib.get_close_matches(str(column), names, n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      raise DataError(f"{where}: no column {column!r} for field {field!r}{hint}; the "
                      f"data has columns {names}")
    if column in rename:
      raise DataError(f"{where}: column {column!r} is mapped to both {rename[column]!r} "
                      f"and {field!r}")
    rename[column] = field
  keep = list(rename) + [c for c in (LINE, PART) if c in dataset.column_names]
  dataset = dataset.select_columns(keep)
  return dataset.rename_columns({c: f for c, f in rename.items() if c != f})


def decode_line(raw_line: bytes, number: int, encoding: str, path: str,
                hint: str = "set the source's options.encoding (e.g. 'latin-1')") -> str:
  """One line of a text file as text; a UTF-8 byte-order mark on line 1 is dropped.

  Raises:
    DataError: the line is not `encoding` text (file, line and byte named).
  """
  if number == 1 and encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig"):
    encoding = "utf-8-sig"  # else the mark glues onto the first field or token
  try:
    return raw_line.decode(encoding)
  except UnicodeDecodeError as error:
    shown = "utf-8" if error.encoding == "utf-8-sig" else error.encoding
    raise DataError(f"{path}: line {number}: byte {raw_line[error.start]:#04x} at column "
                    f"{error.start + 1} is not {shown} text; {hint}") from None


def find_undecodable(path: str, encoding: str) -> None:
  """Raises the `decode_line` error of the first line of `path` that is not `encoding` text."""
  with open(path, "rb") as f:
    for number, raw_line in enumerate(f, 1):
      decode_line(raw_line, number, encoding, path)


def check_not_empty(raw: RawSplit, fields: tuple[str, ...], skip: bool) -> RawSplit:
  """Empty or missing fields are an error naming the line, or skipped rows.

  The check runs on Arrow batches, so a large split is never turned into
  Python objects as a whole.
  """
  dataset = raw.dataset.with_format("arrow")
  bad_rows: list[int] = []
  for start in range(0, len(dataset), CHECK_BATCH):
    table = dataset[start:start + CHECK_BATCH]
    bad_b = np.zeros(table.num_rows, bool)
    bad_field: list[str | None] = [None] * table.num_rows
    for field in fields:
      empty = _empty(table.column(field))
      for row in np.flatnonzero(empty & ~bad_b):
        bad_field[row] = field
      bad_b |= empty
    for row in np.flatnonzero(bad_b):
      if not skip:
        line = table.column(LINE)[int(row)].as_py()
        field = bad_field[row]
        raise DataError(f"{raw.where(line)}: empty {field!r}{_EMPTY_HINTS.get(field, '')}")
      bad_rows.append(start + int(row))
  if not bad_rows:
    return raw
  log.warning("%s: skipped %d rows with empty fields", raw.path, len(bad_rows))
  keep = np.setdiff1d(np.arange(len(dataset)), bad_rows)
  return dataclasses.replace(raw, dataset=raw.dataset.select(keep),
                             num_skipped=raw.num_skipped + len(bad_rows))


def _empty(column: pa.ChunkedArray) -> np.ndarray:
  """Null values, and strings that are empty or only whitespace."""
  empty = pc.is_null(column)
  if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
    blank = pc.equal(pc.utf8_trim_whitespace(column), "")
    empty = pc.or_(empty, pc.fill_null(blank, True))
  return np.asarray(empty.to_numpy(zero_copy_only=False), bool)

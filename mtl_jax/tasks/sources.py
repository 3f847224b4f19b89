"""Reading a task's raw examples from files, as Hugging Face `datasets`.

Every source yields a `datasets.Dataset` with the task kind's normalised
fields (`text`, `label`, `tokens`, `tags`, ...) plus `_line`, the line of the
file each example came from, so later errors can name it. Structural
problems (a missing file, a wrong column count, an empty field) raise
`DataError` naming the file and line; with `skip_bad_rows=True` such rows are
skipped and counted instead, never dropped silently.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from typing import Any, Mapping

import datasets

log = logging.getLogger(__name__)

LINE = "_line"


class DataError(ValueError):
  """A data file or row that cannot be used, with where and why."""


@dataclasses.dataclass(frozen=True)
class Source:
  """Where a task's examples are and how to read them.

  Attributes:
    format: 'csv', 'tsv', 'jsonl' or 'conll'.
    splits: split name ('train', 'eval', ...) -> file path.
    columns: our field name -> the source's column (a name, or a 0-based
      index for header-less files and CoNLL). Fields left out use their own
      name as the column name.
    header: whether CSV/TSV files start with a header row.
    skip_bad_rows: skip (and count) malformed rows instead of failing.
    options: format-specific reader options (e.g. `quoting` for TSV).
  """

  format: str
  splits: Mapping[str, str]
  columns: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  header: bool = True
  skip_bad_rows: bool = False
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.format not in READERS:
      raise ValueError(f"unknown source format {self.format!r}; known: "
                       f"{', '.join(sorted(READERS))}")

  def path(self, split: str) -> str:
    if split not in self.splits:
      raise KeyError(f"no {split!r} split; this source has "
                     f"{', '.join(self.splits) or 'no splits'}")
    return os.path.expanduser(self.splits[split])


@dataclasses.dataclass
class RawSplit:
  """The examples of one split, and how many malformed rows were skipped."""

  dataset: datasets.Dataset
  path: str
  num_skipped: int = 0


def read_split(source: Source, split: str, fields: tuple[str, ...]) -> RawSplit:
  """Reads one split of a source into the given normalised fields.

  Args:
    source: where and how to read.
    split: which split.
    fields: the kind's fields; list-valued fields ('tokens', 'tags') come
      from CoNLL files.

  Returns:
    The split, with `fields` and `_line` columns.

  Raises:
    FileNotFoundError: the split's file does not exist.
    DataError: the file or a row is malformed (file and line named).
  """
  path = source.path(split)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: {split} file not found")
  return READERS[source.format](source, path, fields)


def _read_table(source: Source, path: str, fields: tuple[str, ...]) -> RawSplit:
  """CSV/TSV/JSONL through `datasets.load_dataset`, every value read as text."""
  kwargs: dict[str, Any] = {}
  if source.format in ("csv", "tsv"):
    builder = "csv"
    kwargs.update(sep="\t" if source.format == "tsv" else ",",
                  # Keep "NA", "null", "" as the strings they are.
                  keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    kwargs.update(source.options)
    names = _csv_column_names(path, kwargs, source.header)
    # Every column read as text: '007' stays '007', labels stay label strings.
    kwargs["features"] = datasets.Features({n: datasets.Value("string") for n in names})
    if not source.header:
      kwargs.update(header=None, column_names=names)
    if source.skip_bad_rows:
      kwargs["on_bad_lines"] = "warn"
  else:
    builder = "json"
    kwargs.update(source.options)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
      dataset = datasets.load_dataset(
          builder, data_files={"split": path}, split="split",
          # Re-read when counting skipped rows: the cache would hide them.
          download_mode="force_redownload" if source.skip_bad_rows else None,
          **kwargs)
    except Exception as error:  # datasets wraps the parser's error
      cause = error.__cause__ or error
      raise DataError(f"{path}: cannot be read as {source.format}: {cause}") from error
  skipped = sum(1 for w in caught if "Skipping line" in str(w.message))
  if skipped:
    log.warning("%s: skipped %d malformed rows", path, skipped)
  first_line = 2 if source.header and builder == "csv" else 1
  dataset = dataset.add_column(LINE, list(range(first_line, first_line + len(dataset))))
  rename = {}
  for field in fields:
    column = source.columns.get(field, field)
    if isinstance(column, int) and builder == "csv":
      column = dataset.column_names[column]
    if column not in dataset.column_names:
      raise DataError(f"{path}: no column {column!r} for field {field!r}; the "
                      f"file has columns {dataset.column_names[:-1]}")
    rename[column] = field
  dataset = dataset.select_columns(list(rename) + [LINE])
  dataset = dataset.rename_columns({c: f for c, f in rename.items() if c != f})
  dataset, dropped = _check_not_empty(dataset, path, fields, source.skip_bad_rows)
  return RawSplit(dataset, path, skipped + dropped)


def _csv_column_names(path: str, kwargs: dict[str, Any], header: bool) -> list[str]:
  """The header's names, or '0', '1', ... for header-less files (from the first row)."""
  import csv
  with open(path, newline="", encoding=kwargs["encoding"]) as f:
    first = next(csv.reader(f, delimiter=kwargs["sep"],
                            quoting=kwargs.get("quoting", csv.QUOTE_MINIMAL)), None)
  if first is None:
    raise DataError(f"{path}: the file is empty")
  return first if header else [str(i) for i in range(len(first))]


def _check_not_empty(dataset: datasets.Dataset, path: str, fields: tuple[str, ...],
                     skip: bool) -> tuple[datasets.Dataset, int]:
  """Empty or missing fields are an error naming the line, or skipped rows."""
  bad = []
  for field in fields:
    for line, value in zip(dataset[LINE], dataset[field]):
      if value is None or (isinstance(value, str) and not value.strip()):
        if not skip:
          raise DataError(f"{path}: line {line}: empty {field!r}")
        bad.append(line)
  if not bad:
    return dataset, 0
  bad_lines = set(bad)
  log.warning("%s: skipped %d rows with empty fields", path, len(bad_lines))
  keep = [i for i, line in enumerate(dataset[LINE]) if line not in bad_lines]
  return dataset.select(keep), len(bad_lines)


def _read_conll(source: Source, path: str, fields: tuple[str, ...]) -> RawSplit:
  """CoNLL column files: one token per line, blank lines between sentences.

  `columns` picks the token column (`tokens`, default 0) and the tag column
  (`tags`, default the last), so the same file serves NER, POS or chunking.
  `-DOCSTART-` lines are skipped.
  """
  token_col = source.columns.get("tokens", 0)
  tag_col = source.columns.get("tags", -1)
  sentences: dict[str, list] = {"tokens": [], "tags": [], LINE: []}
  tokens, tags, start = [], [], 0
  num_columns = None
  skipped = 0
  bad_sentence = False

  def flush():
    nonlocal tokens, tags, bad_sentence, skipped
    if tokens and not bad_sentence:
      sentences["tokens"].append(tokens)
      sentences["tags"].append(tags)
      sentences[LINE].append(start)
    elif bad_sentence:
      skipped += 1
    tokens, tags, bad_sentence = [], [], False

  with open(path, encoding=source.options.get("encoding", "utf-8")) as f:
    for number, line in enumerate(f, start=1):
      parts = line.split()
      if not parts:
        flush()
        continue
      if parts[0] == "-DOCSTART-":
        flush()
        continue
      if num_columns is None:
        num_columns = len(parts)
        for name, col in (("token", token_col), ("tag", tag_col)):
          if not -num_columns <= col < num_columns:
            raise DataError(f"{path}: line {number}: {name} column {col} does not "
                            f"exist (lines have {num_columns} columns)")
      if len(parts) != num_columns:
        if not source.skip_bad_rows:
          raise DataError(f"{path}: line {number}: expected {num_columns} columns, "
                          f"found {len(parts)}: {line.rstrip()!r}")
        bad_sentence = True
        continue
      if not tokens:
        start = number
      tokens.append(parts[token_col])
      tags.append(parts[tag_col])
  flush()
  if skipped:
    log.warning("%s: skipped %d sentences with malformed lines", path, skipped)
  if not sentences["tokens"]:
    raise DataError(f"{path}: no sentences found")
  wanted = [f for f in fields if f not in ("tokens", "tags")]
  if wanted:
    raise DataError(f"{path}: CoNLL files have only tokens and tags, not {wanted}")
  return RawSplit(datasets.Dataset.from_dict(sentences), path, skipped)


READERS = {
    "csv": _read_table,
    "tsv": _read_table,
    "jsonl": _read_table,
    "conll": _read_conll,
}

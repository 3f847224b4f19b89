"""Tables: CSV, TSV, JSON lines and parquet files, read by `datasets.load_dataset`.

`datasets` memory-maps what it reads from an Arrow cache file, so a large
file is never held in memory, and re-reading an unchanged file is instant.
CSV/TSV values are read as text ('007' stays '007'; 'NA' stays 'NA');
JSONL and parquet keep their types (numbers, lists for multi-label).
"""

from __future__ import annotations

import csv
import logging
import os
import warnings
from typing import Any

import datasets
from datasets.fingerprint import Hasher

from mtl_jax.tasks.sources.base import (LINE, DataError, RawSplit, Source,
                                        check_not_empty, find_undecodable,
                                        register_reader, select_fields)

log = logging.getLogger(__name__)

# Source options that are ours, not the parser's.
OWN_OPTIONS = ("class_labels",)


@register_reader("csv", "tsv", "jsonl", "parquet")
def read_table(source: Source, path: str, fields: tuple[str, ...]) -> RawSplit:
  """One table file; `path` may start with '~'."""
  path = os.path.expanduser(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: file not found")
  options = {k: v for k, v in source.options.items() if k not in OWN_OPTIONS}
  kwargs: dict[str, Any] = {}
  if source.format in ("csv", "tsv"):
    builder = "csv"
    kwargs.update(sep="\t" if source.format == "tsv" else ",",
                  # Keep "NA", "null", "" as the strings they are.
                  keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    kwargs.update(options)
    try:
      names = _csv_column_names(path, kwargs, source.header)
    except UnicodeDecodeError:
      find_undecodable(path, kwargs["encoding"])  # raises, naming the line
      raise
    # Every column read as text: '007' stays '007', labels stay label strings.
    kwargs["features"] = datasets.Features({n: datasets.Value("string") for n in names})
    if not source.header:
      kwargs.update(header=None, column_names=names)
    if source.skip_bad_rows:
      kwargs["on_bad_lines"] = "warn"
  else:
    builder = "json" if source.format == "jsonl" else "parquet"
    kwargs.update(options)
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
      if isinstance(cause, UnicodeDecodeError):
        find_undecodable(path, kwargs.get("encoding", "utf-8"))  # raises, naming the line
      if "corresponds to no data" in str(cause):
        raise DataError(f"{path}: no rows" + (" (only a header)" if builder == "csv"
                                              and source.header else "")) from None
      raise DataError(f"{path}: cannot be read as {source.format}: {cause}") from error
  skipped = sum(1 for w in caught if "Skipping line" in str(w.message))
  if skipped:
    log.warning("%s: skipped %d malformed rows", path, skipped)
  first_line = 2 if source.header and builder == "csv" else 1
  # The new fingerprint from the old one: letting datasets hash the column
  # (a million line numbers) took 7.5 s of every start.
  dataset = dataset.add_column(
      LINE, list(range(first_line, first_line + len(dataset))),
      new_fingerprint=Hasher.hash((dataset._fingerprint, LINE, first_line)))  # pylint: disable=protected-access
  dataset = select_fields(dataset, source, path, fields)
  _check_one_type(dataset, path, first_line)
  return check_not_empty(RawSplit(dataset, path, skipped), fields, source.skip_bad_rows)


def _check_one_type(dataset: datasets.Dataset, path: str, first_line: int) -> None:
  """A JSONL field mixing types (numbers and strings) is an error naming the line.

  `datasets` reads such a column as untyped JSON, which nothing downstream
  (label vocabularies, Arrow kernels) can take.
  """
  json_feature = getattr(datasets, "Json", None)
  for field, feature in dataset.features.items():
    if json_feature is None or not isinstance(feature, json_feature):
      continue
    values = dataset[field]
    first = type(values[0])
    for row, value in enumerate(values):
      if type(value) is not first:
        raise DataError(
            f"{path}: line {first_line + row}: field {field!r} is {type(value).__name__} "
            f"{value!r}, but {first.__name__} on line {first_line}; a field holds one type "
            "(e.g. write every label as a string)")


def _csv_column_names(path: str, kwargs: dict[str, Any], header: bool) -> list[str]:
  """The header's names, or '0', '1', ... for header-less files (from the first row)."""
  with open(path, newline="", encoding=kwargs["encoding"]) as f:
    first = next(csv.reader(f, delimiter=kwargs["sep"],
                            quoting=kwargs.get("quoting", csv.QUOTE_MINIMAL)), None)
  if first is None:
    raise DataError(f"{path}: the file is empty")
  return first if header else [str(i) for i in range(len(first))]

"""CoNLL column files: one token per line, blank lines between sentences.

A file is parsed once: the sentences go to an Arrow file in the datasets
cache, keyed by the file's path, size and modification time and the parsing
options, and later starts map it from there. A file-backed split is what
lets `datasets.map` cache its tokenization too (it does not cache in-memory
data), so a second start on a large file reads neither the text nor the
tokenizer again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import datasets
import pyarrow as pa

from mtl_jax.tasks.sources.base import (LINE, DataError, RawSplit, Source, decode_line,
                                        register_reader)

log = logging.getLogger(__name__)


@register_reader("conll")
def read_conll(source: Source, path: str, fields: tuple[str, ...]) -> RawSplit:
  """CoNLL column files: one token per line, blank lines between sentences.

  `columns` picks the token column (`tokens`, default 0) and the tag column
  (`tags`, default the last), so the same file serves NER, POS or chunking.
  `-DOCSTART-` lines are skipped.
  """
  path = os.path.expanduser(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: file not found")
  wanted = [f for f in fields if f not in ("tokens", "tags")]
  if wanted:
    raise DataError(f"{path}: CoNLL files have only tokens and tags, not {wanted}")
  token_col = source.columns.get("tokens", 0)
  tag_col = source.columns.get("tags", -1)
  encoding = source.options.get("encoding", "utf-8")
  cached = _cache_path(path, token_col, tag_col, source.skip_bad_rows, encoding)
  if not os.path.exists(cached):
    sentences, skipped = _parse(path, token_col, tag_col, source.skip_bad_rows, encoding)
    try:
      _write_cache(cached, sentences, skipped)
    except OSError as error:  # a read-only or full cache folder: parse again next time
      log.warning("%s: cannot write the parsed-file cache %s (%s); reading it in memory",
                  path, cached, error)
      _warn_skipped(path, skipped)
      return RawSplit(datasets.Dataset.from_dict(sentences), path, skipped)
  with pa.memory_map(cached) as source_file:  # the schema alone: no data read
    skipped = int(pa.ipc.open_stream(source_file).schema.metadata[_SKIPPED])
  dataset = datasets.Dataset.from_file(cached)
  _warn_skipped(path, skipped)
  return RawSplit(dataset, path, skipped)


def _warn_skipped(path: str, skipped: int) -> None:
  if skipped:
    log.warning("%s: skipped %d sentences with malformed lines", path, skipped)


# Bump when the parsed columns change: old cache files are then never read.
_CACHE_VERSION = 2
# The schema metadata key of the sentences skipped as malformed (datasets ignores it).
_SKIPPED = b"mtl_jax_skipped"


def _cache_path(path: str, token_col: int, tag_col: int, skip_bad_rows: bool,
                encoding: str) -> str:
  stat = os.stat(path)
  key = json.dumps([_CACHE_VERSION, os.path.abspath(path), stat.st_size, stat.st_mtime_ns,
                    token_col, tag_col, skip_bad_rows, encoding])
  digest = hashlib.sha256(key.encode()).hexdigest()[:32]
  return os.path.join(datasets.config.HF_DATASETS_CACHE, "mtl_jax_conll", f"{digest}.arrow")


def _write_cache(cached: str, sentences: dict[str, list], skipped: int) -> None:
  """The sentences as an Arrow stream (what `Dataset.from_file` maps), written by
  temporary file + rename, so a half-written cache is never read."""
  table = pa.Table.from_pydict(sentences).replace_schema_metadata({_SKIPPED: str(skipped)})
  os.makedirs(os.path.dirname(cached), exist_ok=True)
  temporary = f"{cached}.{os.getpid()}.tmp"
  try:
    with pa.OSFile(temporary, "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
      writer.write_table(table)
    os.replace(temporary, cached)
  finally:
    if os.path.exists(temporary):  # a failed write leaves nothing behind
      os.remove(temporary)


def _parse(path: str, token_col: int, tag_col: int, skip_bad_rows: bool, encoding: str
           ) -> tuple[dict[str, list], int]:
  """The file's sentences ({tokens, tags, _line}) and how many were skipped."""
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

  with open(path, "rb") as f:
    for number, raw_line in enumerate(f, start=1):
      line = decode_line(raw_line, number, encoding, path)
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
        if not skip_bad_rows:
          raise DataError(f"{path}: line {number}: expected {num_columns} columns, "
                          f"found {len(parts)}: {line.rstrip()!r}")
        bad_sentence = True
        continue
      if not tokens:
        start = number
      tokens.append(parts[token_col])
      tags.append(parts[tag_col])
  flush()
  if not sentences["tokens"]:
    raise DataError(f"{path}: no sentences found")
  return sentences, skipped



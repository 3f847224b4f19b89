"""CoNLL column files: one token per line, blank lines between sentences."""

from __future__ import annotations

import logging
import os

import datasets

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

  encoding = source.options.get("encoding", "utf-8")
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



"""Kinds with one output per text (or text pair): what classification, regression
and multi-label classification share.

A single-text task reads `text`; a sentence-pair task (`pair=True`, the
`pair_*` kinds) reads `text` and `text_pair` and encodes them as
`[CLS] text [SEP] text_pair [SEP]` with token types 0 and 1. The head pools
the sequence (BERT's pooler), then one dense layer to the outputs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence


from mtl_jax.tasks import tokenization
from mtl_jax.tasks.kinds.base import (EncodedSplit, Kind, encode_split, locations,
                                      token_columns)
from mtl_jax.tasks.sources import DataError, RawSplit


@dataclasses.dataclass(frozen=True)
class SequenceKind(Kind):
  """One prediction per text or text pair.

  Subclasses implement `label_column(values, labels, where)` (raw label
  values -> the encoded `labels` column) and `placeholder(labels)` (a valid
  label for unlabelled inputs), plus the head's loss, prediction and scores.

  Attributes:
    pair: read `text_pair` too (sentence-pair tasks).
  """

  pair: bool = False

  @property
  def name(self) -> str:
    return ("pair_" if self.pair else "") + self.base_name

  @property
  def fields(self) -> tuple[str, ...]:
    return ("text", "text_pair", "label") if self.pair else ("text", "label")

  def texts(self, raw: RawSplit) -> list[str]:
    """The texts (both segments of pairs), e.g. to train a WordPiece vocabulary."""
    texts = raw.column("text")
    return texts + raw.column("text_pair") if self.pair else texts

  def encode(self, raw: RawSplit, tokenizer, labels: Sequence[str],
             max_length: int) -> EncodedSplit:
    tok = tokenization.truncating(tokenizer, max_length)
    where, pair = raw.locator(), self.pair

    def encode_batch(batch: Mapping[str, list]) -> dict[str, list]:
      encoded = tokenization.encode_texts(
          tok, batch["text"], batch["text_pair"] if pair else None, max_length=None)
      columns = token_columns(encoded)
      columns["labels"] = self.label_column(batch["label"], labels,
                                            locations(where, batch))
      return columns

    return encode_split(raw, encode_batch,
                        (repr(self), tuple(labels), max_length, tok.to_str()))

  def label_column(self, values: Sequence[Any], labels: Sequence[str],
                   where: Sequence[str]) -> list:
    raise NotImplementedError

  def placeholder(self, labels: Sequence[str]) -> Any:
    raise NotImplementedError

  def raw_inputs(self, inputs: list[Any], labels: Sequence[str]) -> dict[str, list]:
    """Raw fields for unlabelled inputs, with placeholder labels.

    Args:
      inputs: texts; for pair tasks (text, text_pair) pairs, or strings with
        the two texts separated by a tab.
      labels: the task's labels.

    Raises:
      DataError: a pair task's input without a second text (input named).
    """
    fields: dict[str, list] = {"text": [], "label": [self.placeholder(labels)] * len(inputs)}
    if not self.pair:
      fields["text"] = [str(x) for x in inputs]
      return fields
    fields["text_pair"] = []
    for number, item in enumerate(inputs, start=1):
      texts = item.split("\t") if isinstance(item, str) else list(item)
      if len(texts) != 2 or not all(str(t).strip() for t in texts):
        raise DataError(f"input {number}: a sentence-pair task needs two texts (separated "
                        f"by a tab), got {len(texts)}: {item!r}")
      fields["text"].append(str(texts[0]))
      fields["text_pair"].append(str(texts[1]))
    return fields

"""Tokenization with Hugging Face `tokenizers`, and word-to-sub-word label alignment.

A tokenizer comes from a checkpoint's files (`tokenizer.json`, else
`vocab.txt` as BERT WordPiece) or, for an encoder trained from scratch, is a
WordPiece model trained on the task texts. Padding is never done here: the
batcher pads to length buckets.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable, Sequence

import numpy as np
import tokenizers
from tokenizers.implementations import BertWordPieceTokenizer

from mtl_jax.constants import IGNORE_LABEL


def load_tokenizer(path: str | os.PathLike, lowercase: bool | None = None
                   ) -> tokenizers.Tokenizer:
  """Loads a tokenizer from a checkpoint directory or a tokenizer file.

  Args:
    path: a directory holding `tokenizer.json` or `vocab.txt`, or either file.
    lowercase: for a bare `vocab.txt`, whether to lowercase (default: read
      `tokenizer_config.json`'s `do_lower_case`, else True).

  Returns:
    A `tokenizers.Tokenizer` with padding and truncation switched off.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    json_file = os.path.join(path, "tokenizer.json")
    vocab_file = os.path.join(path, "vocab.txt")
  else:
    json_file = path if path.endswith(".json") else ""
    vocab_file = path if path.endswith(".txt") else ""
  if json_file and os.path.exists(json_file):
    tokenizer = tokenizers.Tokenizer.from_file(json_file)
  elif vocab_file and os.path.exists(vocab_file):
    if lowercase is None:
      lowercase = _lowercase_from_config(os.path.dirname(vocab_file))
    tokenizer = BertWordPieceTokenizer(vocab_file, lowercase=lowercase)._tokenizer
  else:
    raise FileNotFoundError(f"{path}: no tokenizer.json or vocab.txt found")
  tokenizer.no_padding()
  tokenizer.no_truncation()
  return tokenizer


def _lowercase_from_config(directory: str) -> bool:
  import json
  file = os.path.join(directory, "tokenizer_config.json")
  if os.path.exists(file):
    with open(file) as f:
      return bool(json.load(f).get("do_lower_case", True))
  return True


def train_wordpiece(texts: Iterable[str], vocab_size: int = 8000,
                    lowercase: bool = True, min_frequency: int = 2
                    ) -> tokenizers.Tokenizer:
  """Trains a BERT WordPiece tokenizer (with [CLS]/[SEP] templates) on texts.

  Args:
    texts: the training texts (an iterable; may be a generator).
    vocab_size: the vocabulary size to aim for.
    lowercase: lowercase and strip accents, as uncased BERT.
    min_frequency: the minimum count for a merge.

  Returns:
    The trained tokenizer, with padding and truncation off.
  """
  wordpiece = BertWordPieceTokenizer(lowercase=lowercase)
  wordpiece.train_from_iterator(
      texts, vocab_size=vocab_size, min_frequency=min_frequency,
      special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False)
  tokenizer = wordpiece._tokenizer
  # BertWordPieceTokenizer adds the [CLS]/[SEP] template only when its vocab
  # exists at construction, so after training it is set here.
  cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
  tokenizer.post_processor = tokenizers.processors.TemplateProcessing(
      single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
      special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
  tokenizer.no_padding()
  tokenizer.no_truncation()
  return tokenizer


def has_tokenizer(directory: str | os.PathLike) -> bool:
  """Whether `directory` holds a tokenizer `load_tokenizer` reads."""
  return any(os.path.exists(os.path.join(directory, name))
             for name in ("tokenizer.json", "vocab.txt"))


def save_tokenizer(tokenizer: tokenizers.Tokenizer, directory: str | os.PathLike) -> None:
  """Writes tokenizer.json and, for WordPiece vocabularies, vocab.txt.

  Each file is written under a temporary name and renamed: an interrupted
  save (a full disk, a kill) leaves the previous files whole.
  """
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, "tokenizer.json")
  tokenizer.save(path + ".tmp")
  os.replace(path + ".tmp", path)
  if isinstance(tokenizer.model, tokenizers.models.WordPiece):
    vocab = tokenizer.get_vocab()
    path = os.path.join(directory, "vocab.txt")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      for token, _ in sorted(vocab.items(), key=lambda item: item[1]):
        f.write(token + "\n")
    os.replace(path + ".tmp", path)


@dataclasses.dataclass
class Encoded:
  """Token ids of a list of examples (ragged: one array per example)."""

  input_ids: list[np.ndarray]
  token_type_ids: list[np.ndarray]
  # Word index of each sub-word (-1 for special tokens); tagging only.
  word_ids: list[np.ndarray] | None
  num_truncated: int
  # Per example: whether it was cut to max_length.
  truncated: list[bool] = dataclasses.field(default_factory=list)


def truncating(tokenizer: tokenizers.Tokenizer, max_length: int) -> tokenizers.Tokenizer:
  """A copy of `tokenizer` that truncates to `max_length` (the caller's is unchanged).

  Making the copy costs a serialisation round trip, so code that encodes
  many batches makes it once and passes `max_length=None` to `encode_*`.
  """
  copy = tokenizers.Tokenizer.from_str(tokenizer.to_str())
  copy.no_padding()
  copy.enable_truncation(max_length, strategy="longest_first")
  return copy


def _encoded(encodings, word_ids=None) -> Encoded:
  truncated = [bool(e.overflowing) for e in encodings]
  return Encoded(
      input_ids=[np.asarray(e.ids, np.int32) for e in encodings],
      token_type_ids=[np.asarray(e.type_ids, np.int32) for e in encodings],
      word_ids=word_ids, num_truncated=sum(truncated), truncated=truncated)


def encode_texts(tokenizer: tokenizers.Tokenizer, texts: Sequence[str],
                 text_pairs: Sequence[str] | None = None, *, max_length: int | None
                 ) -> Encoded:
  """Encodes single texts or text pairs ([CLS] a [SEP] b [SEP], token types 0/1).

  Args:
    tokenizer: the tokenizer.
    texts: the first (or only) segments.
    text_pairs: the second segments of pair tasks, or None.
    max_length: longer encodings are truncated (longest segment first) and
      counted in `num_truncated`; None: `tokenizer` already truncates (see
      `truncating`).

  Returns:
    The encoded examples.
  """
  tok = tokenizer if max_length is None else truncating(tokenizer, max_length)
  inputs = list(texts) if text_pairs is None else list(zip(texts, text_pairs))
  return _encoded(tok.encode_batch(inputs))


def encode_words(tokenizer: tokenizers.Tokenizer, words: Sequence[Sequence[str]],
                 *, max_length: int | None) -> Encoded:
  """Encodes pre-split words (tagging), keeping each sub-word's word index.

  `max_length` as in `encode_texts`.
  """
  tok = tokenizer if max_length is None else truncating(tokenizer, max_length)
  encodings = tok.encode_batch([list(w) for w in words], is_pretokenized=True)
  word_ids = [np.asarray([-1 if w is None else w for w in e.word_ids], np.int32)
              for e in encodings]
  return _encoded(encodings, word_ids)


def align_word_labels(word_ids: np.ndarray, word_labels: Sequence[int]) -> np.ndarray:
  """Sub-word labels from word labels: a word's first sub-word carries its label.

  Later sub-words of a word and special tokens get `IGNORE_LABEL`, so the
  loss and the metric count each word exactly once.

  Args:
    word_ids: word index per sub-word (-1 for special tokens).
    word_labels: label id per word.

  Returns:
    int32 labels, one per sub-word.
  """
  labels = np.full(word_ids.shape, IGNORE_LABEL, np.int32)
  previous = -1
  for position, word in enumerate(word_ids):
    if word >= 0 and word != previous:
      labels[position] = word_labels[word]
    previous = word
  return labels


def first_subword_positions(word_ids: np.ndarray) -> np.ndarray:
  """Positions of each word's first sub-word, in word order (for predictions)."""
  first = np.ones(word_ids.shape, bool)
  first[1:] = word_ids[1:] != word_ids[:-1]
  return np.nonzero(first & (word_ids >= 0))[0]

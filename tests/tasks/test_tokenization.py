import numpy as np
import pytest

from mtl_jax.tasks import tokenization
from mtl_jax.constants import IGNORE_LABEL


@pytest.fixture(scope="module")
def tokenizer():
  texts = ["the quick brown fox jumps over the lazy dog"] * 20 + ["unbelievable"] * 3
  return tokenization.train_wordpiece(texts, vocab_size=60, min_frequency=1)


def test_align_first_subword_carries_the_label():
  word_ids = np.array([-1, 0, 0, 1, 2, 2, 2, -1])
  labels = tokenization.align_word_labels(word_ids, [5, 6, 7])
  np.testing.assert_array_equal(
      labels, [IGNORE_LABEL, 5, IGNORE_LABEL, 6, 7, IGNORE_LABEL, IGNORE_LABEL, IGNORE_LABEL])
  np.testing.assert_array_equal(tokenization.first_subword_positions(word_ids), [1, 3, 4])


def test_words_split_into_subwords_keep_word_ids(tokenizer):
  encoded = tokenization.encode_words(tokenizer, [["unbelievable", "fox"]], max_length=32)
  word_ids = encoded.word_ids[0]
  assert word_ids[0] == -1 and word_ids[-1] == -1  # [CLS] ... [SEP]
  assert (word_ids == 0).sum() >= 1 and (word_ids == 1).sum() >= 1
  assert list(word_ids[1:-1]) == sorted(word_ids[1:-1])


def test_pairs_use_sep_and_token_types(tokenizer):
  encoded = tokenization.encode_texts(tokenizer, ["the fox"], ["the dog"], max_length=32)
  ids, types = encoded.input_ids[0], encoded.token_type_ids[0]
  sep = tokenizer.token_to_id("[SEP]")
  assert ids[0] == tokenizer.token_to_id("[CLS]")
  first_sep, second_sep = np.nonzero(ids == sep)[0]
  assert second_sep == len(ids) - 1
  np.testing.assert_array_equal(types[:first_sep + 1], 0)
  np.testing.assert_array_equal(types[first_sep + 1:], 1)


def test_truncation_is_counted(tokenizer):
  texts = ["the quick brown fox jumps over the lazy dog", "the"]
  full = tokenization.encode_texts(tokenizer, texts, max_length=64)
  assert [len(x) for x in full.input_ids[1:]] == [3] and full.num_truncated == 0
  encoded = tokenization.encode_texts(tokenizer, texts, max_length=5)
  assert [len(x) for x in encoded.input_ids] == [5, 3]
  assert list(encoded.input_ids[0][:4]) == list(full.input_ids[0][:4])
  assert encoded.num_truncated == 1


def test_loading_does_not_change_the_callers_tokenizer(tokenizer):
  tokenization.encode_texts(tokenizer, ["the fox"], max_length=3)
  assert tokenizer.truncation is None and tokenizer.padding is None


def test_save_and_load(tmp_path, tokenizer):
  tokenization.save_tokenizer(tokenizer, tmp_path)
  from_json = tokenization.load_tokenizer(tmp_path)
  (tmp_path / "tokenizer.json").unlink()
  from_vocab = tokenization.load_tokenizer(tmp_path)
  text = "the lazy fox"
  assert from_json.encode(text).ids == tokenizer.encode(text).ids
  assert from_vocab.encode(text).ids == tokenizer.encode(text).ids


def test_an_interrupted_save_keeps_the_previous_files(tmp_path, tokenizer, monkeypatch):
  import errno
  import os

  tokenization.save_tokenizer(tokenizer, tmp_path)
  before = {name: (tmp_path / name).read_text() for name in ("tokenizer.json", "vocab.txt")}
  other = tokenization.train_wordpiece(["a completely different text corpus"] * 5,
                                       vocab_size=60)

  def full_disk(src, dst):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(os, "replace", full_disk)
  with pytest.raises(OSError, match="No space left"):
    tokenization.save_tokenizer(other, tmp_path)
  monkeypatch.undo()
  for name, text in before.items():
    assert (tmp_path / name).read_text() == text
  assert tokenization.load_tokenizer(tmp_path).get_vocab() == tokenizer.get_vocab()

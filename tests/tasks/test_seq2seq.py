import numpy as np
import pytest

from mtl_jax import heads
from mtl_jax import metrics
from mtl_jax.tasks import Source, Task, batching, tokenization
from mtl_jax.constants import IGNORE_LABEL
from mtl_jax.tasks.kinds.seq2seq import Seq2Seq, special_tokens


@pytest.fixture(scope="module")
def copy_task(data_dir):
  return Task("copy", "seq2seq", Source("csv", {"train": str(data_dir / "copy_train.csv")},
                                        columns={"text": "source"}),
              kind_options={"max_target_length": 4})


@pytest.fixture(scope="module")
def tokenizer(copy_task):
  raw = copy_task.read("train")
  return tokenization.train_wordpiece(copy_task.spec.texts(raw), vocab_size=60)


def test_targets_become_shifted_decoder_arrays_of_one_static_length(copy_task, tokenizer):
  split = copy_task.load("train", tokenizer, ())
  bos, eos = special_tokens(tokenizer)
  assert split.target_length == 4
  # Sources of up to 4 words: targets of 4 words do not fit 4 positions + EOS.
  assert split.num_targets_truncated > 0
  assert all(t[0] == bos and t[-1] == eos and len(t) <= 5 for t in split.targets)
  batch = batching.pad_batch(split, [0, 1], length=16, batch_size=3)
  assert "labels" not in batch
  assert batch["decoder_input_ids"].shape == batch["decoder_labels"].shape == (3, 4)
  for row in range(2):
    target = split.targets[row]
    n = len(target) - 1
    np.testing.assert_array_equal(batch["decoder_input_ids"][row, :n], target[:-1])
    np.testing.assert_array_equal(batch["decoder_labels"][row, :n], target[1:])
    assert (batch["decoder_labels"][row, n:] == IGNORE_LABEL).all()
  assert (batch["decoder_labels"][2] == IGNORE_LABEL).all()
  # Padding the source side to a longer bucket leaves the decoder side alone.
  longer = batching.pad_to_length(batch, 32, split.token_labels)
  assert longer["input_ids"].shape == (3, 32)
  np.testing.assert_array_equal(longer["decoder_input_ids"], batch["decoder_input_ids"])
  empty = batching.TaskStream(split, 2, (16,), seed=0).empty_batch(16)
  assert empty["decoder_input_ids"].shape == (2, 4) and (empty["decoder_labels"] < 0).all()


def test_teacher_forced_loss_known_answer(copy_task, tokenizer):
  split = copy_task.load("train", tokenizer, ())
  batch = batching.pad_batch(split, [0, 1], length=16, batch_size=2)
  vocab = tokenizer.get_vocab_size()
  logits = np.zeros((2, 4, vocab), np.float32)
  loss = heads.output_of(Seq2Seq()).loss
  assert float(loss(Seq2Seq(), {"logits": logits}, batch)) == pytest.approx(np.log(vocab))
  # Certain of every target token: loss ~0.
  labels = batch["decoder_labels"]
  rows, cols = np.nonzero(labels >= 0)
  logits[rows, cols, labels[rows, cols]] = 50.0
  assert float(loss(Seq2Seq(), {"logits": logits}, batch)) < 1e-6


def test_decoding_cuts_at_eos_and_scores_against_the_references(copy_task, tokenizer):
  split = copy_task.load("train", tokenizer, ())
  bos, eos = special_tokens(tokenizer)
  kind = Seq2Seq()
  references = split.texts(split.targets)
  # Predictions are the targets without BOS, then EOS and junk after it.
  predictions = [np.concatenate([t[1:], [eos, bos, 7]]) for t in split.targets]
  assert kind.decode(predictions, split, ()) == references
  scores = kind.evaluate(predictions, split, ())
  # Corpus BLEU is 0 here: targets cut to 4 positions hold no 4-grams.
  assert scores == {"exact_match": 1.0, "token_f1": 1.0, "bleu": 0.0}


def test_text_metrics_known_answers():
  assert metrics.exact_match(["a b", "a  b ", "c"], ["a b", "a b", "d"]) == pytest.approx(2 / 3)
  # 2 common tokens, lengths 3 and 2: F1 = 2 * 2 / 5.
  assert metrics.token_f1(["a b c"], ["b a"]) == pytest.approx(0.8)
  assert metrics.token_f1(["", "x"], ["", ""]) == pytest.approx(0.5)
  assert metrics.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100)
  with pytest.raises(ValueError, match="2 predictions for 1 references"):
    metrics.bleu(["a", "b"], ["a"])


def test_max_target_length_is_only_for_seq2seq():
  with pytest.raises(ValueError, match=r"unknown option\(s\) \['max_target_length'\]"):
    Task.from_config("news", {"kind": "classification",
                              "kind_options": {"max_target_length": 8},
                              "source": {"format": "csv", "splits": {}}})
  with pytest.raises(ValueError, match="max_target_length must be a positive integer"):
    Task.from_config("copy", {"kind": "seq2seq", "kind_options": {"max_target_length": 0},
                              "source": {"format": "csv", "splits": {}}})


def test_tokenizer_without_start_and_end_tokens_is_refused():
  import tokenizers
  bare = tokenizers.Tokenizer(tokenizers.models.WordLevel({"a": 0, "[UNK]": 1}, "[UNK]"))
  bare.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  with pytest.raises(ValueError, match="start and an end token"):
    special_tokens(bare)

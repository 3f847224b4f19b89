"""Task kinds: pair encoding, regression targets, multi-label sets, metrics, bad input."""

import json
import os

import numpy as np
import pytest

from mtl_jax.tasks import DataError, TaskRegistry, get_kind, task_from_config, tokenization
from mtl_jax.tasks.batching import pad_batch, pad_to_length

WORDS = "the a cat dog sat ran on mat fast slow . ? is was big small sky blue".split()


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.train_wordpiece([" ".join(WORDS)] * 5, vocab_size=120,
                                      min_frequency=1)


def _tsv(tmp_path, name, rows):
  path = tmp_path / name
  path.write_text("".join("\t".join(r) + "\n" for r in rows))
  return str(path)


def _pair_task(tmp_path, kind, rows, **extra):
  path = _tsv(tmp_path, "pairs.tsv", [("a", "b", "y")] + rows)
  return task_from_config("t", {"kind": kind, "source": {
      "format": "tsv", "splits": {"train": path},
      "columns": {"text": "a", "text_pair": "b", "label": "y"}}, **extra})


def test_pair_encoding_has_two_segments(tmp_path, tokenizer):
  task = _pair_task(tmp_path, "pair_classification",
                    [("the cat sat", "a dog ran", "yes"), ("sky is blue", "the mat", "no")])
  split = task.load("train", tokenizer, task.label_vocab())
  ids, types = split.input_ids[0], split.token_type_ids[0]
  cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
  assert ids[0] == cls and list(ids).count(sep) == 2
  second = list(ids).index(sep) + 1
  assert (types[:second] == 0).all() and (types[second:] == 1).all()
  assert task.label_vocab() == ("no", "yes") and list(split.labels) == [1, 0]


def test_pair_truncation_keeps_both_segments(tmp_path, tokenizer):
  task = _pair_task(tmp_path, "pair_classification",
                    [(" ".join(["cat"] * 30), "a dog", "yes"), ("sky", "mat", "no")],
                    max_length=12)
  split = task.load("train", tokenizer, task.label_vocab())
  assert split.num_truncated == 1 and split.lengths.tolist()[0] == 12
  assert split.token_type_ids[0][-1] == 1  # the short second text survives


def test_pair_task_missing_second_sentence_is_named(tmp_path, tokenizer):
  path = _tsv(tmp_path, "pairs.tsv", [("a", "b", "y"), ("the cat", "a dog", "1"),
                                      ("the mat", "", "0")])
  task = task_from_config("nli", {"kind": "pair_classification", "source": {
      "format": "tsv", "splits": {"train": path},
      "columns": {"text": "a", "text_pair": "b", "label": "y"}}})
  with pytest.raises(DataError, match=r"task nli: .*pairs.tsv: line 3: empty 'text_pair' "
                     r"\(a sentence-pair task needs a second text"):
    task.read("train")
  # A GLUE file's row cut short: the missing column reads as empty.
  _tsv(tmp_path, "train.tsv", [("index", "sentence1", "sentence2", "label"),
                               ("0", "the cat", "a dog", "entailment"), ("1", "the mat")])
  task = TaskRegistry.get("glue_rte", data_dir=str(tmp_path))
  with pytest.raises(DataError, match=r"task glue_rte: .*train.tsv: line 3: empty "
                     r"'text_pair'"):
    task.read("train")


@pytest.mark.parametrize("score, message", [
    ("high", r"line 3: regression target 'high' is not a number"),
    ("nan", r"line 3: regression target 'nan' is not finite"),
    ("5.5", r"line 3: regression target 5.5 is outside the declared range \[0, 5\]"),
    ("-1", r"line 3: regression target -1 is outside the declared range \[0, 5\]"),
])
def test_bad_regression_targets_are_named(tmp_path, tokenizer, score, message):
  task = _pair_task(tmp_path, "pair_regression",
                    [("the cat", "a cat", "4.5"), ("the sky", "a mat", score)],
                    kind_options={"range": [0, 5]})
  with pytest.raises(DataError, match=r"task t: .*pairs.tsv: " + message):
    task.load("train", tokenizer, task.label_vocab())


def test_regression_normalized_targets_and_predictions(tmp_path, tokenizer):
  task = _pair_task(tmp_path, "pair_regression",
                    [("the cat", "a cat", "5"), ("the sky", "a mat", "1.25")],
                    kind_options={"range": [0, 5], "normalize": True})
  assert task.label_vocab() == ("score",)
  split = task.load("train", tokenizer, task.label_vocab())
  np.testing.assert_allclose(split.labels, [1.0, 0.25])
  kind = task.spec
  assert kind.decode([0.5, 1.0], split, ("score",)) == [2.5, 5.0]
  scores = kind.evaluate([np.float32(0.9), np.float32(0.3)], split, ("score",))
  assert scores == {"pearson": pytest.approx(1.0), "spearman": pytest.approx(1.0)}
  batch = pad_batch(split, [0, 1], length=8, batch_size=3)
  assert batch["labels"].dtype == np.float32 and batch["labels"].shape == (3,)


def test_regression_options_are_checked():
  with pytest.raises(ValueError, match="normalize=True needs range"):
    get_kind("regression", normalize=True)
  with pytest.raises(ValueError, match="low < high"):
    get_kind("regression", range=(5, 0))
  with pytest.raises(ValueError, match=r"kind 'regression': unknown option\(s\) \['rnage'\]"):
    get_kind("regression", rnage=(0, 5))


def test_multilabel_from_text_cells_and_json_lists(tmp_path, tokenizer):
  csv_path = tmp_path / "ml.csv"
  csv_path.write_text('text,tags\nthe cat sat,"pets, home"\nthe sky is blue,nature\n'
                      'a big dog ran,"pets,nature"\n')
  task = task_from_config("ml", {"kind": "multilabel", "source": {
      "format": "csv", "splits": {"train": str(csv_path)},
      "columns": {"label": "tags"}}})
  labels = task.label_vocab()
  assert labels == ("home", "nature", "pets")
  split = task.load("train", tokenizer, labels)
  np.testing.assert_array_equal(np.stack(split.labels), [[1, 0, 1], [0, 1, 0], [0, 1, 1]])
  batch = pad_batch(split, [2, 0], length=8, batch_size=3)
  np.testing.assert_array_equal(batch["labels"], [[0, 1, 1], [1, 0, 1], [0, 0, 0]])
  # The label axis is not a token axis: padding to a longer bucket leaves it alone.
  assert pad_to_length(batch, 16, token_labels=False)["labels"].shape == (3, 3)

  jsonl = tmp_path / "ml.jsonl"
  jsonl.write_text("\n".join(json.dumps(r) for r in [
      {"text": "the cat", "label": ["pets"]}, {"text": "the sky", "label": []}]))
  task = task_from_config("ml", {"kind": "multilabel", "labels": labels, "source": {
      "format": "jsonl", "splits": {"train": str(jsonl)}}})
  split = task.load("train", tokenizer, labels)
  np.testing.assert_array_equal(np.stack(split.labels), [[0, 0, 1], [0, 0, 0]])
  kind = task.spec
  predictions = [np.array([0, 0, 1]), np.array([0, 1, 0])]
  assert kind.decode(predictions, split, labels) == [["pets"], ["nature"]]
  assert kind.evaluate(predictions, split, labels)["subset_accuracy"] == 0.5
  bad = tmp_path / "bad.jsonl"
  bad.write_text(json.dumps({"text": "the cat", "label": ["pets", "cats"]}) + "\n")
  task = task_from_config("ml", {"kind": "multilabel", "labels": labels, "source": {
      "format": "jsonl", "splits": {"train": str(bad)}}})
  with pytest.raises(DataError, match=r"bad.jsonl: line 1: unknown label 'cats'"):
    task.load("train", tokenizer, labels)


def test_classification_metric_selection(tmp_path, tokenizer):
  task = _pair_task(tmp_path, "pair_classification",
                    [("the cat", "a dog", "1"), ("the sky", "a mat", "0"),
                     ("the dog", "a cat", "1")],
                    metrics=["f1", "matthews_corr", "accuracy"])
  split = task.load("train", tokenizer, task.label_vocab())
  scores = task.spec.evaluate([1, 1, 0], split, task.label_vocab())
  assert list(scores) == ["f1", "matthews_corr", "accuracy"]
  assert scores["f1"] == pytest.approx(0.5) and scores["accuracy"] == pytest.approx(1 / 3)
  with pytest.raises(ValueError, match=r"task t: pair_classification: unknown metric\(s\) "
                     r"\['pearson'\]"):
    _pair_task(tmp_path, "pair_classification", [], metrics=["pearson"]).spec


def test_pair_inputs_for_prediction():
  kind = get_kind("pair_classification")
  fields = kind.raw_inputs(["the cat\ta dog", ("the sky", "the mat")], ("0", "1"))
  assert fields["text"] == ["the cat", "the sky"]
  assert fields["text_pair"] == ["a dog", "the mat"]
  with pytest.raises(DataError, match=r"input 2: a sentence-pair task needs two texts"):
    kind.raw_inputs(["the cat\ta dog", "only one"], ("0", "1"))


def test_encoded_split_is_cached_on_disk(tmp_path, tokenizer):
  task = _pair_task(tmp_path, "pair_classification",
                    [("the cat", "a dog", "1"), ("the sky", "a mat", "0")])
  labels = task.label_vocab()
  first = task.load("train", tokenizer, labels)
  [cache] = first.dataset.cache_files
  written = os.stat(cache["filename"]).st_mtime_ns
  again = task.load("train", tokenizer, labels)
  assert again.dataset.cache_files == [cache]
  assert os.stat(cache["filename"]).st_mtime_ns == written  # read, not rewritten
  other = task.load("train", tokenizer, labels[::-1])  # other labels: another cache
  assert other.dataset.cache_files != [cache]
  assert list(other.labels) == [0, 1]


def _conll_task(data_dir, column, **extra):
  return task_from_config("t", {"kind": "tagging", "source": {
      "format": "conll", "splits": {"train": str(data_dir / "ner_train.txt")},
      "columns": {"tokens": 0, "tags": column}}, **extra})


def _perfect_predictions(split, flip_every=0):
  """Sub-word predictions equal to the gold tags (every `flip_every`-th word wrong)."""
  out = []
  for labels in split.labels:
    predicted = np.where(np.asarray(labels) < 0, 0, labels)
    if flip_every:
      predicted[1::flip_every] = (predicted[1::flip_every] + 1) % 3
    out.append(predicted)
  return out


def test_pos_tags_are_scored_by_token_accuracy_without_seqeval(data_dir, tokenizer, recwarn):
  task = _conll_task(data_dir, 1)  # POS tags: NNP, VBD, DT, ...
  labels = task.label_vocab()
  split = task.load("train", tokenizer, labels)
  assert not task.spec.chunks(labels)
  scores = task.spec.evaluate(_perfect_predictions(split), split, labels)
  assert scores == {"token_accuracy": 1.0}
  assert task.spec.main_metric_in(scores) == "token_accuracy"
  assert not [w for w in recwarn if "NE tag" in str(w.message)]  # no seqeval warning flood
  with pytest.raises(ValueError, match="span metrics \\['span_f1'\\] need chunk tags"):
    _conll_task(data_dir, 1, metrics=["span_f1"]).spec.evaluate(
        _perfect_predictions(split), split, labels)


def test_chunk_and_entity_tags_keep_span_f1(data_dir, tokenizer):
  for column in (2, 3):  # chunks (B-NP, I-VP) and entities (B-ORG)
    task = _conll_task(data_dir, column)
    labels = task.label_vocab()
    split = task.load("train", tokenizer, labels)
    assert task.spec.chunks(labels)
    scores = task.spec.evaluate(_perfect_predictions(split), split, labels)
    assert scores["span_f1"] == 1.0 and task.spec.main_metric_in(scores) == "span_f1"
  # The scheme can be set: POS tags forced to chunks are scored as spans.
  forced = _conll_task(data_dir, 1, kind_options={"scheme": "chunks"}).spec
  assert forced.chunks(["NN", "VBD"]) and not get_kind("tagging").chunks(["NN", "VBD"])
  with pytest.raises(ValueError, match="scheme must be one of"):
    get_kind("tagging", scheme="iob")

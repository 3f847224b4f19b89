import numpy as np
import pytest
from seqeval import metrics as seqeval_metrics
from sklearn import metrics as sk

from mtl_jax import metrics


def test_span_scores_known_answer():
  gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
  predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
  scores = metrics.span_scores(predicted, gold)
  # 3 gold spans, 3 predicted, 2 right.
  assert scores["span_precision"] == pytest.approx(2 / 3)
  assert scores["span_recall"] == pytest.approx(2 / 3)
  assert scores["span_f1"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(5))
def test_span_f1_matches_seqeval_on_random_iob(seed):
  rng = np.random.default_rng(seed)
  tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG"]  # I- after O: IOB1 style
  gold = [[tags[i] for i in rng.integers(0, 6, rng.integers(1, 12))] for _ in range(30)]
  predicted = [[tags[i] if rng.random() < 0.3 else g for i, g in
                zip(rng.integers(0, 6, len(s)), s)] for s in gold]
  assert metrics.span_scores(predicted, gold)["span_f1"] == seqeval_metrics.f1_score(
      gold, predicted)


def test_misaligned_tags_are_an_error():
  with pytest.raises(ValueError, match="not aligned"):
    metrics.span_scores([["O"]], [["O", "O"]])


def test_classification_metrics_match_sklearn():
  gold = np.array([0, 1, 2, 2, 1, 0, 3])
  predicted = np.array([0, 2, 2, 2, 1, 1, 3])
  assert metrics.accuracy(predicted, gold) == pytest.approx(5 / 7)
  assert metrics.macro_f1(predicted, gold) == pytest.approx(
      sk.f1_score(gold, predicted, average="macro"))


def test_report_table_and_json(tmp_path):
  results = {"news": {"accuracy": 0.75}, "ner": {"span_f1": 0.5}}
  table = metrics.format_table(results)
  assert "0.7500" in table and "0.5000" in table and "-" in table
  metrics.write_json(results, str(tmp_path / "m.json"))
  import json
  assert json.loads((tmp_path / "m.json").read_text()) == results

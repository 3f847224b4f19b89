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


def _random_binary(seed, n=60):
  rng = np.random.default_rng(seed)
  gold = rng.integers(0, 2, n)
  return np.where(rng.random(n) < 0.7, gold, 1 - gold), gold


@pytest.mark.parametrize("seed", range(3))
def test_mcc_and_binary_f1_match_sklearn(seed):
  predicted, gold = _random_binary(seed)
  assert metrics.matthews_corr(predicted, gold) == pytest.approx(
      sk.matthews_corrcoef(gold, predicted))
  assert metrics.binary_f1(predicted, gold, positive=1) == pytest.approx(
      sk.f1_score(gold, predicted))
  assert metrics.binary_f1(predicted, gold, positive=0) == pytest.approx(
      sk.f1_score(gold, predicted, pos_label=0))


def test_mcc_known_answer():
  # TP=2 TN=1 FP=1 FN=0: (2*1 - 1*0) / sqrt(3 * 2 * 2 * 1)
  assert metrics.matthews_corr(np.array([1, 1, 1, 0]), np.array([1, 1, 0, 0])) == (
      pytest.approx(2 / np.sqrt(12)))
  assert metrics.matthews_corr(np.zeros(4), np.array([1, 0, 1, 0])) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_correlations_match_scipy(seed):
  from scipy import stats
  rng = np.random.default_rng(seed)
  gold = rng.uniform(0, 5, 50)
  predicted = gold + rng.normal(0, 1.5, 50)
  assert metrics.pearson(predicted, gold) == pytest.approx(stats.pearsonr(predicted, gold)[0])
  assert metrics.spearman(predicted, gold) == pytest.approx(
      stats.spearmanr(predicted, gold)[0])
  assert metrics.mse(predicted, gold) == pytest.approx(np.mean((predicted - gold) ** 2))


def test_undefined_correlations_are_nan_as_in_scipy_never_zero():
  from scipy import stats
  constant, gold = np.ones(5), np.arange(5.0)
  with pytest.warns(stats.ConstantInputWarning):
    assert np.isnan(stats.pearsonr(constant, gold)[0])  # the reference
  assert np.isnan(metrics.pearson(constant, gold)) and np.isnan(metrics.spearman(constant, gold))
  diverged = np.array([0.5, np.nan, 1.0, np.inf, 2.0])
  for metric in (metrics.pearson, metrics.spearman, metrics.mse):
    assert np.isnan(metric(diverged, gold))


def test_empty_inputs_are_a_clear_error():
  for metric in (metrics.pearson, metrics.spearman):
    with pytest.raises(ValueError, match="at least 2 examples"):
      metric(np.array([]), np.array([]))
  with pytest.raises(ValueError, match="no predictions"):
    metrics.mse(np.array([]), np.array([]))
  with pytest.raises(ValueError, match="no tagged words"):
    metrics.span_scores([], [])
  with pytest.raises(ValueError, match="no tagged words"):
    metrics.token_accuracy([], [])


def test_evaluation_names_the_task_whose_metric_is_undefined(tmp_path, caplog):
  from mtl_jax.tasks import task_from_config, tokenization
  from mtl_jax.training import evaluate

  path = tmp_path / "sts.tsv"
  path.write_text("a\tb\tscore\n" + "".join(f"the cat\ta dog\t{i}\n" for i in range(4)))
  task = task_from_config("sts", {"kind": "pair_regression", "source": {
      "format": "tsv", "splits": {"train": str(path)},
      "columns": {"text": "a", "text_pair": "b", "label": "score"}}})
  tokenizer = tokenization.train_wordpiece(["the cat a dog"] * 5, vocab_size=40)
  split = task.load("train", tokenizer, task.label_vocab())

  def diverged(params, batch):  # a regression head gone to nan
    return {"sts": np.full(len(batch["sts"]["input_ids"]), np.nan, np.float32)}

  results = evaluate(diverged, None, {"sts": split}, {"sts": task.spec},
                     {"sts": task.label_vocab()}, batch_size=4, buckets=(16,))
  assert np.isnan(results["sts"]["pearson"]) and np.isnan(results["sts"]["spearman"])
  assert "task sts: pearson, spearman undefined (nan)" in caplog.text
  assert "4 of 4 predicted values are not finite: the head diverged" in caplog.text


def test_multilabel_scores_match_sklearn():
  rng = np.random.default_rng(0)
  gold = rng.integers(0, 2, (40, 5))
  predicted = np.where(rng.random((40, 5)) < 0.8, gold, 1 - gold)
  scores = metrics.multilabel_scores(predicted, gold)
  assert scores["micro_f1"] == pytest.approx(sk.f1_score(gold, predicted, average="micro"))
  assert scores["macro_f1"] == pytest.approx(sk.f1_score(gold, predicted, average="macro"))
  assert scores["subset_accuracy"] == pytest.approx(np.mean((predicted == gold).all(1)))


def test_a_one_class_model_is_named_at_evaluation(data_dir, caplog):
  from mtl_jax.tasks import task_from_config, tokenization
  from mtl_jax.training import evaluate

  news = task_from_config("news", {"kind": "classification", "source": {
      "format": "csv", "splits": {"train": str(data_dir / "news_dev.csv")}}})
  ner = task_from_config("ner", {"kind": "tagging", "source": {
      "format": "conll", "splits": {"train": str(data_dir / "ner_valid.txt")}}})
  tokenizer = tokenization.train_wordpiece(
      [line for name in ("news_dev.csv", "ner_valid.txt")
       for line in (data_dir / name).read_text().splitlines()], vocab_size=200)
  splits = {t.name: t.load("train", tokenizer, t.label_vocab()) for t in (news, ner)}
  labels = {t.name: t.label_vocab() for t in (news, ner)}
  kinds = {t.name: t.spec for t in (news, ner)}

  def majority(params, batch):  # label id 0 everywhere ('O' for the tagger: labels sort it first)
    return {name: np.zeros(b["input_ids"].shape if name == "ner" else len(b["input_ids"]),
                           np.int32) for name, b in batch.items()}

  evaluate(majority, None, splits, kinds, labels, batch_size=8, buckets=(64,))
  assert f"task news predicts {labels['news'][0]!r} for every example" in caplog.text
  assert "task ner predicts 'O' for every word" in caplog.text
  caplog.clear()

  def varied(params, batch):  # labels 0 and 1 in turn
    return {name: (np.indices(b["input_ids"].shape).sum(0) if name == "ner"
                   else np.arange(len(b["input_ids"]))) % 2 for name, b in batch.items()}

  evaluate(varied, None, splits, kinds, labels, batch_size=8, buckets=(64,))
  assert "for every" not in caplog.text

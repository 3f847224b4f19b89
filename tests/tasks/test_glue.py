"""The GLUE catalogue: each reader on real-format rows (tests/data/glue) and the full files."""

import numpy as np
import pytest

from mtl_jax import metrics
from mtl_jax.tasks import DataError, MixtureRegistry, TaskRegistry
from mtl_jax.tasks.glue import GLUE_TASKS

# (glue id, train rows, dev rows, first dev example's fields) of tests/data/glue.
FIXTURES = [
    ("cola", 6, 3, {"text": "The dog chased the ball.", "label": "1"}),
    ("sst2", 6, 3, {"text": "a delightful surprise ", "label": "1"}),
    ("mrpc", 4, 2, {"text": "He said the plan would not change .",
                    "text_pair": "\" The plan will not change , \" he said .", "label": "1"}),
    ("stsb", 4, 3, {"text": "A man with a hard hat is dancing.",
                    "text_pair": "A man wearing a hard hat is dancing.", "label": "5.000"}),
    ("qqp", 4, 2, {"text": "How can I improve my English?",
                   "text_pair": "How do I get better at English?", "label": "1"}),
    ("mnli", 4, 5, {"text": "The law was passed in 1990.", "text_pair": "A law exists.",
                    "label": "entailment"}),
    ("qnli", 4, 2, {"text": "Where is the tower?",
                    "text_pair": "The tower stands in the centre of Paris.",
                    "label": "entailment"}),
    ("rte", 4, 2, {"text": "The singer died of cancer at age 44.",
                   "text_pair": "The singer had an accident.", "label": "not_entailment"}),
    ("wnli", 4, 2, {"text": "The drain is clogged with hair. It has to be cleaned.",
                    "text_pair": "The hair has to be cleaned.", "label": "0"}),
]


def _task(glue_id, root):
  return TaskRegistry.get(f"glue_{glue_id}",
                          data_dir=str(root / GLUE_TASKS[glue_id].folder))


@pytest.mark.parametrize("glue_id, train, dev, first", FIXTURES)
def test_reader_on_real_format_rows(data_dir, glue_id, train, dev, first):
  task = _task(glue_id, data_dir / "glue")
  train_split, dev_split = task.read("train"), task.read("eval")
  assert len(train_split.dataset) == train and len(dev_split.dataset) == dev
  example = dev_split.dataset[0]
  assert {k: example[k] for k in first} == first
  labels = task.label_vocab(train_split)
  if task.kind.endswith("regression"):
    assert labels == ("score",)
  else:  # every dev label is one of the task's labels
    assert set(dev_split.column("label")) <= set(labels)


def test_literal_quotes_and_bom(data_dir):
  """GLUE TSVs quote nothing: '"' is text; MRPC's BOM is not part of 'Quality'."""
  mrpc = _task("mrpc", data_dir / "glue").read("train")
  assert mrpc.dataset[0]["text"] == ("The company said \" profits rose \" in the third "
                                     "quarter .")
  assert mrpc.dataset[0]["_line"] == 2
  cola = _task("cola", data_dir / "glue").read("train")
  assert cola.dataset[2]["text"] == "Whom did she say \"hello\" to?"
  assert cola.dataset[0]["_line"] == 1  # no header


def test_mnli_reports_matched_and_mismatched(data_dir):
  task = _task("mnli", data_dir / "glue")
  dev = task.read("eval")
  assert dev.parts.tolist() == ["matched"] * 2 + ["mismatched"] * 3
  assert dev.where(3, "mismatched").endswith("dev_mismatched.tsv: line 3")


def test_metrics_are_glues(data_dir):
  expected = {"cola": "matthews_corr", "mrpc": "f1", "stsb": "pearson", "qqp": "f1",
              "sst2": "accuracy", "rte": "accuracy"}
  for glue_id, metric in expected.items():
    assert _task(glue_id, data_dir / "glue").spec.main_metric == metric


def test_glue_average_of_results():
  results = {"glue_mrpc": {"f1": 0.9, "accuracy": 0.8},
             "glue_stsb": {"pearson": 0.88, "spearman": 0.86},
             "glue_mnli": {"accuracy_matched": 0.84, "accuracy_mismatched": 0.82},
             "glue_cola": {"matthews_corr": 0.5, "accuracy": 0.8},
             "ag_news": {"accuracy": 0.9}}
  glue = metrics.glue_average(results)
  assert glue["tasks"] == pytest.approx({"mrpc": 0.85, "stsb": 0.87, "mnli": 0.83,
                                         "cola": 0.5})
  assert glue["score"] == pytest.approx((0.85 + 0.87 + 0.83 + 0.5) / 4)
  assert not glue["complete"]
  assert metrics.glue_average({"ag_news": {"accuracy": 1.0}}) is None
  with pytest.raises(KeyError, match="needs metric"):
    metrics.glue_average({"glue_mrpc": {"accuracy": 0.8}})


def test_one_source_only(data_dir):
  with pytest.raises(ValueError, match="give one source"):
    TaskRegistry.get("glue_rte", data_dir=str(data_dir), hf="nyu-mll/glue")


def test_default_source_is_the_hub():
  task = TaskRegistry.get("glue_rte")
  assert task.source.format == "hf"
  assert dict(task.source.options) == {"path": "nyu-mll/glue", "name": "rte",
                                       "class_labels": "names"}
  assert task.source.splits["eval"] == "validation"


def test_glue_mixtures(data_dir):
  mixture = MixtureRegistry.get("glue_small", data_dir=str(data_dir / "glue"))
  assert sorted(mixture.tasks) == ["glue_cola", "glue_mrpc", "glue_rte", "glue_sst2",
                                   "glue_stsb"]
  assert mixture.tasks["glue_rte"] == {"data_dir": str(data_dir / "glue" / "RTE")}
  assert mixture.rate("glue_rte") == "examples"
  assert len(MixtureRegistry.get("glue").tasks) == 9


# Row counts from ../shared/data/README.md.
SHARED_COUNTS = [
    ("sst2", 67349, 872),
    ("cola", 8551, 1043),
    # The README says 3,668 (GLUE's count); the copy in ../shared holds 3,667 rows
    # (3,668 lines with the header, all well-formed: checked with csv.reader).
    ("mrpc", 3667, 408),
    ("rte", 2490, 277),
    ("stsb", 5749, 1500),
]


@pytest.mark.parametrize("glue_id, train, dev", SHARED_COUNTS)
def test_reader_on_the_full_files(shared_dir, glue_id, train, dev):
  task = _task(glue_id, shared_dir / "data" / "glue")
  train_split, dev_split = task.read("train"), task.read("eval")
  assert len(train_split.dataset) == train and len(dev_split.dataset) == dev
  labels = task.label_vocab(train_split)
  if glue_id == "stsb":
    scores = np.asarray(train_split.column("label"), float)
    assert scores.min() == 0.0 and scores.max() == 5.0
  else:
    assert labels == task.labels
    assert set(dev_split.column("label")) == set(labels)


def test_full_stsb_scores_are_in_range(shared_dir, tmp_path):
  """Every STS-B target passes the declared 0-5 range (and a bad one fails)."""
  from mtl_jax.tasks import tokenization
  tokenizer = tokenization.load_tokenizer(shared_dir / "models" / "all-MiniLM-L6-v2")
  task = _task("stsb", shared_dir / "data" / "glue")
  split = task.load("eval", tokenizer, task.label_vocab())
  assert len(split) == 1500 and split.labels.min() >= 0 and split.labels.max() <= 5
  bad = tmp_path / "STS-B"
  bad.mkdir()
  lines = (shared_dir / "data" / "glue" / "STS-B" / "dev.tsv").read_text().splitlines()
  lines[3] = "\t".join(lines[3].split("\t")[:-1] + ["5.5"])
  (bad / "train.tsv").write_text("\n".join(lines) + "\n")
  (bad / "dev.tsv").write_text("\n".join(lines[:3]) + "\n")
  task = TaskRegistry.get("glue_stsb", data_dir=str(bad))
  with pytest.raises(DataError, match=r"task glue_stsb: .*train.tsv: line 4: regression "
                     r"target 5.5 is outside the declared range \[0, 5\]"):
    task.load("train", tokenizer, task.label_vocab())


def test_kind_options_from_config_merge_onto_the_catalogues(data_dir):
  """`normalize=True` on STS-B keeps the catalogue's 0-5 range (it needs it)."""
  root = data_dir / "glue" / GLUE_TASKS["stsb"].folder
  task = TaskRegistry.get("glue_stsb", data_dir=str(root), kind_options={"normalize": True})
  assert dict(task.kind_options) == {"range": (0.0, 5.0), "normalize": True}
  assert task.spec.normalize  # a normalised regression without a range fails to build
  replaced = TaskRegistry.get("glue_stsb", data_dir=str(root), kind_options={"range": (0, 1)})
  assert dict(replaced.kind_options) == {"range": (0, 1)}

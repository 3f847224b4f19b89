import pytest

from mtl_jax.tasks import DataError, Source, Task, TaskRegistry, task_from_config
from mtl_jax.tasks import tokenization


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.train_wordpiece(["John visited Paris on Monday ."] * 5,
                                      vocab_size=80, min_frequency=1)


def _news(data_dir, **extra):
  spec = {"kind": "classification",
          "source": {"format": "csv", "splits": {"train": str(data_dir / "news_train.csv"),
                                                 "eval": str(data_dir / "news_dev.csv")}}}
  spec.update(extra)
  return task_from_config("news", spec)


def test_custom_task_from_a_few_lines_of_config(data_dir, tokenizer):
  task = _news(data_dir)
  labels = task.label_vocab()
  assert labels == ("0", "1", "2", "3")
  split = task.load("train", tokenizer, labels)
  assert len(split) == 48 and set(split.labels) == {0, 1, 2, 3}


def test_registered_tasks_take_options(data_dir):
  task = TaskRegistry.get("conll2003_pos", data_dir=str(data_dir))
  assert task.kind == "tagging" and task.source.columns["tags"] == 1
  assert "demo_ag_news" in TaskRegistry.names()


@pytest.mark.parametrize("name, files", [
    ("conll2003_ner", {"train.txt": "ner_train.txt", "valid.txt": "ner_valid.txt"}),
    ("ag_news", {"train.csv": "news_train.csv", "dev.csv": "news_dev.csv"})])
def test_catalogue_tasks_have_a_test_split_where_the_folder_has_one(tmp_path, data_dir,
                                                                      tokenizer, name, files):
  for target, fixture in files.items():
    (tmp_path / target).write_text((data_dir / fixture).read_text())
  assert "test" not in TaskRegistry.get(name, data_dir=str(tmp_path)).source.splits
  test_file = "test.txt" if name.startswith("conll") else "test.csv"
  (tmp_path / test_file).write_text((data_dir / list(files.values())[1]).read_text())
  task = TaskRegistry.get(name, data_dir=str(tmp_path))
  assert task.source.splits["test"] == str(tmp_path / test_file)
  assert len(task.load("test", tokenizer, task.label_vocab())) == len(
      task.load("eval", tokenizer, task.label_vocab()))


def test_tag_vocab_has_o_first_and_groups_types(data_dir):
  task = TaskRegistry.get("conll2003_ner", data_dir=str(data_dir))
  task = Task(task.name, task.kind, task.source.__class__(
      "conll", {"train": str(data_dir / "ner_train.txt")}))
  labels = task.label_vocab()
  assert labels[0] == "O"
  assert labels.index("I-PER") == labels.index("B-PER") + 1


def test_unknown_label_in_eval_names_file_and_line(tmp_path, data_dir, tokenizer):
  dev = tmp_path / "dev.csv"
  dev.write_text("text,label\nfine,1\nodd,7\n")
  task = task_from_config("news", {"kind": "classification", "source": {
      "format": "csv", "splits": {"train": str(data_dir / "news_train.csv"),
                                  "eval": str(dev)}}})
  with pytest.raises(DataError, match=r"dev.csv: line 3: unknown label '7'"):
    task.load("eval", tokenizer, task.label_vocab())


def test_unknown_tag_names_the_sentence_line(tmp_path, data_dir, tokenizer):
  dev = tmp_path / "valid.txt"
  dev.write_text("John NNP B-NP B-PER\n\nParis NNP B-NP B-CITY\n")
  task = TaskRegistry.get("conll2003_ner", data_dir=str(data_dir),
                          source={"splits": {"train": str(data_dir / "ner_train.txt"),
                                             "eval": str(dev)}})
  with pytest.raises(DataError, match=r"valid.txt: line 3: unknown tag 'B-CITY'"):
    task.load("eval", tokenizer, task.label_vocab())


@pytest.mark.parametrize("spec, message", [
    ({"kind": "classification", "source": {"format": "csv", "splits": {}}, "lables": []},
     r"unknown key 'lables' \(did you mean 'labels'\?\)"),
    ({"kind": "classificaton", "source": {"format": "csv", "splits": {}}},
     "unknown task kind 'classificaton'"),
    ({"kind": "classification", "source": {"format": "csv", "split": {}}},
     r"tasks.x.source: unknown key 'split' \(did you mean 'splits'\?\)"),
    ({"source": {}}, "not a registered task"),
])
def test_bad_task_config_is_named(spec, message):
  with pytest.raises(ValueError, match=message):
    task_from_config("x", spec)


def test_unknown_registered_name_suggests():
  with pytest.raises(KeyError, match="did you mean 'ag_news'"):
    TaskRegistry.get("ag_newz")


@pytest.mark.parametrize("name", ["/tmp/escape", "../up", "a/b", "", ".hidden", "a..b", "x y"])
def test_unsafe_task_names_are_refused(name, data_dir):
  source = Source("csv", {"train": str(data_dir / "news_train.csv")})
  with pytest.raises(ValueError, match="use letters, digits"):
    Task(name, "classification", source)


def test_compare_never_writes_outside_its_workdir(tmp_path, data_dir):
  """A task named by an absolute path is refused before any run folder is made."""
  from mtl_jax import config as config_lib
  from mtl_jax.reports import compare

  outside = tmp_path / "outside"
  config = config_lib.default_config()
  spec = {"kind": "classification", "source": {"format": "csv", "splits": {
      "train": str(data_dir / "news_train.csv")}}}
  config.tasks = {"news": spec, str(outside): spec}
  with pytest.raises(ValueError, match="use letters, digits"):
    compare.plan(config, str(tmp_path / "work"), [0])
  assert not outside.exists() and not (tmp_path / "work").exists()

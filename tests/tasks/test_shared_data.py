"""The catalogue's readers on the full files in ../shared (row counts from its README)."""

import pytest

from mtl_jax.tasks import TaskRegistry


@pytest.mark.parametrize("name, folder, train, dev", [
    ("ag_news", "ag_news_subset", 4000, 1000),
    ("conll2003_ner", "conll2003", 14041, 3250),
])
def test_row_counts(shared_dir, name, folder, train, dev):
  task = TaskRegistry.get(name, data_dir=str(shared_dir / "data" / folder))
  assert len(task.read("train").dataset) == train
  assert len(task.read("eval").dataset) == dev


def test_conll_ner_tags(shared_dir):
  task = TaskRegistry.get("conll2003_ner", data_dir=str(shared_dir / "data" / "conll2003"))
  labels = task.label_vocab()
  assert labels == ("O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG",
                    "B-PER", "I-PER")

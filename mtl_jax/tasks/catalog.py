"""Ready, named tasks: AG News, CoNLL-2003 (NER, POS, chunking) and their demo slices.

Each entry is a factory taking `data_dir` (the folder with the usual files)
plus any `Task` field to override, and registering under its name in
`TaskRegistry`. The demo tasks read the slices shipped in `mtl_jax/demo_data`.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os

from mtl_jax.tasks.sources import Source
from mtl_jax.tasks.task import Task, TaskRegistry

DEMO_DATA = str(importlib.resources.files("mtl_jax") / "demo_data")

AG_NEWS_LABELS = ("0", "1", "2", "3")  # world, sports, business, tech
CONLL_COLUMNS = {"ner": 3, "pos": 1, "chunk": 2}


def with_overrides(task: Task, **overrides) -> Task:
  """`task` with fields replaced.

  A `source` dict replaces only the source fields it names, and `kind_options`
  are merged onto the task's own, so `normalize=True` on GLUE STS-B keeps the
  catalogue's `range=(0, 5)`.
  """
  if "source" in overrides and isinstance(overrides["source"], dict):
    overrides["source"] = dataclasses.replace(task.source, **overrides["source"])
  if "kind_options" in overrides:
    overrides["kind_options"] = {**task.kind_options, **overrides["kind_options"]}
  return dataclasses.replace(task, **overrides)


def _with_test(splits: dict[str, str], test_file: str) -> dict[str, str]:
  """`splits` plus a 'test' split where `test_file` exists (`mtl-jax eval --split test`)."""
  return {**splits, "test": test_file} if os.path.exists(test_file) else splits


def ag_news(data_dir: str, name: str = "ag_news", eval_split: str = "dev.csv",
            **overrides) -> Task:
  """AG News topic classification from `train.csv` and `dev.csv` (header `text,label`);
  `test.csv`, where the folder has it, is the 'test' split."""
  source = Source("csv", _with_test({"train": os.path.join(data_dir, "train.csv"),
                                     "eval": os.path.join(data_dir, eval_split)},
                                    os.path.join(data_dir, "test.csv")))
  return with_overrides(Task(name, "classification", source, labels=AG_NEWS_LABELS), **overrides)


def conll2003(data_dir: str, column: str = "ner", name: str | None = None,
              eval_split: str = "valid.txt", **overrides) -> Task:
  """CoNLL-2003 tagging from `train.txt` and `valid.txt`; `column` ner, pos or chunk;
  `test.txt` (the split CoNLL-2003 results are usually reported on), where the
  folder has it, is the 'test' split."""
  if column not in CONLL_COLUMNS:
    raise ValueError(f"column must be one of {sorted(CONLL_COLUMNS)}, got {column!r}")
  source = Source("conll", _with_test({"train": os.path.join(data_dir, "train.txt"),
                                       "eval": os.path.join(data_dir, eval_split)},
                                      os.path.join(data_dir, "test.txt")),
                  columns={"tokens": 0, "tags": CONLL_COLUMNS[column]})
  return with_overrides(Task(name or f"conll2003_{column}", "tagging", source), **overrides)


def _register():
  TaskRegistry.register("ag_news", ag_news)
  for column in CONLL_COLUMNS:
    TaskRegistry.register(f"conll2003_{column}",
                     lambda data_dir, column=column, **kw: conll2003(data_dir, column, **kw))
  TaskRegistry.register("demo_ag_news", lambda **kw: ag_news(
      os.path.join(DEMO_DATA, "ag_news"), name="demo_ag_news", **kw))
  TaskRegistry.register("demo_conll2003_ner", lambda **kw: conll2003(
      os.path.join(DEMO_DATA, "conll2003"), "ner", name="demo_conll2003_ner", **kw))


_register()

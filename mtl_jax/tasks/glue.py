"""The GLUE benchmark's nine tasks, ready to train, and the `glue` mixtures.

    TaskRegistry.get("glue_rte", data_dir="glue/RTE")        # the GLUE TSV files
    TaskRegistry.get("glue_rte", hf="nyu-mll/glue")           # the hub (online)
    TaskRegistry.get("glue_rte", hf="/data/glue_parquet")     # ... or its local copy
    TaskRegistry.get("glue_rte", tfds="~/tensorflow_datasets")  # prepared TFDS glue/rte

| task | kind | metrics (GLUE's first) |
| --- | --- | --- |
| `glue_cola` | classification | matthews_corr, accuracy |
| `glue_sst2` | classification | accuracy |
| `glue_mrpc` | pair_classification | f1, accuracy |
| `glue_stsb` | pair_regression (0-5) | pearson, spearman |
| `glue_qqp` | pair_classification | f1, accuracy |
| `glue_mnli` | pair_classification | accuracy on dev matched and mismatched |
| `glue_qnli` | pair_classification | accuracy |
| `glue_rte` | pair_classification | accuracy |
| `glue_wnli` | pair_classification | accuracy |

Labels are the TSV files' strings ('0'/'1', or 'entailment'/...); hub and
TFDS class ids map onto the same strings, so a model trained from one
source predicts on another. The GLUE TSVs quote nothing (a '"' is a
character of the text), so they are read with `csv.QUOTE_NONE`; MRPC's
files start with a UTF-8 byte-order mark, which the reader strips.
`metrics.glue_average` turns the results into the GLUE score.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
from typing import Any, Mapping

from mtl_jax.tasks.catalog import with_overrides
from mtl_jax.tasks.mixture import Mixture, MixtureRegistry
from mtl_jax.tasks.sources import Source
from mtl_jax.tasks.task import Task, TaskRegistry

HUB_NAME = "nyu-mll/glue"
TSV_OPTIONS = {"quoting": csv.QUOTE_NONE}


@dataclasses.dataclass(frozen=True)
class GlueTask:
  """How one GLUE task is laid out in each source.

  Attributes:
    id: the hub/TFDS config name ('rte'); the registered task is 'glue_<id>'.
    folder: the GLUE download's folder ('RTE').
    kind: the task kind.
    labels: the label strings (as in the TSV files); None for regression.
    metrics: the metrics to report, GLUE's first.
    tsv_columns: field -> TSV column (name, or index when `tsv_header` is False).
    hub_columns: field -> hub/TFDS feature.
    tsv_header: whether the TSV files have a header row.
    class_labels: how hub/TFDS class ids become the label strings: 'ids'
      ('0'/'1' files) or 'names' ('entailment' files).
    eval_files: the dev TSV, or {part: TSV} (MNLI).
    eval_split: the hub/TFDS dev split, or {part: split}.
    kind_options: the kind's options.
  """

  id: str
  folder: str
  kind: str
  labels: tuple[str, ...] | None
  metrics: tuple[str, ...]
  tsv_columns: Mapping[str, Any]
  hub_columns: Mapping[str, str]
  tsv_header: bool = True
  class_labels: str = "ids"
  eval_files: str | Mapping[str, str] = "dev.tsv"
  eval_split: str | Mapping[str, str] = "validation"
  kind_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


_PAIR = {"text": "sentence1", "text_pair": "sentence2"}
_ENTAILMENT = ("entailment", "not_entailment")
GLUE_TASKS = {t.id: t for t in (
    # CoLA's train/dev files have no header: source, label, original mark, sentence.
    GlueTask("cola", "CoLA", "classification", ("0", "1"), ("matthews_corr", "accuracy"),
             {"text": 3, "label": 1}, {"text": "sentence"}, tsv_header=False),
    GlueTask("sst2", "SST-2", "classification", ("0", "1"), ("accuracy",),
             {"text": "sentence"}, {"text": "sentence"}),
    GlueTask("mrpc", "MRPC", "pair_classification", ("0", "1"), ("f1", "accuracy"),
             {"text": "#1 String", "text_pair": "#2 String", "label": "Quality"}, _PAIR,
             kind_options={"positive_label": "1"}),
    GlueTask("stsb", "STS-B", "pair_regression", None, ("pearson", "spearman"),
             {**_PAIR, "label": "score"}, _PAIR, kind_options={"range": (0.0, 5.0)}),
    GlueTask("qqp", "QQP", "pair_classification", ("0", "1"), ("f1", "accuracy"),
             {"text": "question1", "text_pair": "question2", "label": "is_duplicate"},
             {"text": "question1", "text_pair": "question2"},
             kind_options={"positive_label": "1"}),
    GlueTask("mnli", "MNLI", "pair_classification",
             ("contradiction", "entailment", "neutral"), ("accuracy",),
             {**_PAIR, "label": "gold_label"}, {"text": "premise", "text_pair": "hypothesis"},
             class_labels="names",
             eval_files={"matched": "dev_matched.tsv", "mismatched": "dev_mismatched.tsv"},
             eval_split={"matched": "validation_matched",
                         "mismatched": "validation_mismatched"}),
    GlueTask("qnli", "QNLI", "pair_classification", _ENTAILMENT, ("accuracy",),
             {"text": "question", "text_pair": "sentence", "label": "label"},
             {"text": "question", "text_pair": "sentence"}, class_labels="names"),
    GlueTask("rte", "RTE", "pair_classification", _ENTAILMENT, ("accuracy",),
             {**_PAIR, "label": "label"}, _PAIR, class_labels="names"),
    GlueTask("wnli", "WNLI", "pair_classification", ("0", "1"), ("accuracy",),
             {**_PAIR, "label": "label"}, _PAIR),
)}


def glue_task(glue_id: str, data_dir: str | None = None, *,
              hf: str | Mapping[str, Any] | None = None,
              tfds: str | Mapping[str, Any] | None = None,
              name: str | None = None, **overrides) -> Task:
  """One GLUE task, from its TSV files, the hub (or a local copy) or TFDS.

  Args:
    glue_id: 'cola', 'sst2', 'mrpc', 'stsb', 'qqp', 'mnli', 'qnli', 'rte' or
      'wnli'.
    data_dir: the folder holding the task's TSV files (`train.tsv`,
      `dev.tsv`; MNLI: `dev_matched.tsv`, `dev_mismatched.tsv`).
    hf: a hub name ('nyu-mll/glue', online) or a local folder (a copy of the
      hub repo, or `save_to_disk` output), or a dict of `load_dataset`
      options (`path`, `name`, ...). The default when no source is given.
    tfds: a TFDS data_dir holding a prepared `glue/<id>`, a prepared builder
      folder (with dataset_info.json), or a dict of tfds source options.
    name: the task's name (default 'glue_<id>').
    **overrides: any other `Task` field (e.g. `max_length`, `kind_options`).

  Returns:
    The task.
  """
  spec = GLUE_TASKS[glue_id]
  if sum(x is not None for x in (data_dir, hf, tfds)) > 1:
    raise ValueError(f"glue_{glue_id}: give one source: data_dir, hf or tfds")
  if data_dir is not None:
    source = _tsv_source(spec, data_dir)
  elif tfds is not None:
    source = _tfds_source(spec, tfds)
  else:
    source = _hf_source(spec, HUB_NAME if hf is None else hf)
  task = Task(name or f"glue_{glue_id}", spec.kind, source, labels=spec.labels,
              metrics=spec.metrics, kind_options=dict(spec.kind_options))
  return with_overrides(task, **overrides)


def _tsv_source(spec: GlueTask, data_dir: str) -> Source:
  eval_files = spec.eval_files
  if isinstance(eval_files, Mapping):
    eval_files = {part: os.path.join(data_dir, f) for part, f in eval_files.items()}
  else:
    eval_files = os.path.join(data_dir, eval_files)
  return Source("tsv", {"train": os.path.join(data_dir, "train.tsv"), "eval": eval_files},
                columns=dict(spec.tsv_columns), header=spec.tsv_header,
                options=dict(TSV_OPTIONS))


def _hf_source(spec: GlueTask, hf: str | Mapping[str, Any]) -> Source:
  options = dict(hf) if isinstance(hf, Mapping) else {"path": hf}
  local = os.path.expanduser(str(options.get("path", "")))
  # A hub name, or a copy of the hub repo (its README lists the configs), needs
  # the config name; a folder of this task's files alone does not.
  if "name" not in options and not (os.path.isdir(local) and not os.path.exists(
      os.path.join(local, "README.md"))):
    options["name"] = spec.id
  options.setdefault("class_labels", spec.class_labels)
  return Source("hf", {"train": "train", "eval": spec.eval_split},
                columns=dict(spec.hub_columns), options=options)


def _tfds_source(spec: GlueTask, tfds: str | Mapping[str, Any]) -> Source:
  if isinstance(tfds, Mapping):
    options = dict(tfds)
  elif os.path.exists(os.path.join(os.path.expanduser(tfds), "dataset_info.json")):
    options = {"path": tfds}
  else:
    options = {"name": f"glue/{spec.id}", "data_dir": tfds}
  options.setdefault("class_labels", spec.class_labels)
  return Source("tfds", {"train": "train", "eval": spec.eval_split},
                columns=dict(spec.hub_columns), options=options)


# The seed experiment's tasks: the five GLUE tasks in ../shared/data/glue.
SMALL = ("cola", "sst2", "mrpc", "stsb", "rte")


def glue_mixture(data_dir: str | None = None, *, hf: str | Mapping | None = None,
                 tfds: str | Mapping | None = None, tasks=tuple(GLUE_TASKS),
                 name: str = "glue", rate: Any = "examples") -> Mixture:
  """GLUE tasks mixed in proportion to their train examples (seqio's GLUE mixture).

  Args:
    data_dir: the GLUE download's folder (holding CoLA/, SST-2/, ...).
    hf: as `glue_task`'s (the default: the hub).
    tfds: a TFDS data_dir with the prepared `glue/<id>` datasets.
    tasks: the GLUE ids to include.
    name: the mixture's name.
    rate: every task's rate ('examples': proportional to its train split).
  """
  specs = {}
  for glue_id in tasks:
    if data_dir is not None:
      options = {"data_dir": os.path.join(data_dir, GLUE_TASKS[glue_id].folder)}
    elif tfds is not None:
      options = {"tfds": tfds}
    else:
      options = {"hf": HUB_NAME if hf is None else hf}
    specs[f"glue_{glue_id}"] = options
  return Mixture(name, specs, default_rate=rate)


def _register() -> None:
  for glue_id in GLUE_TASKS:
    TaskRegistry.register(f"glue_{glue_id}", functools.partial(glue_task, glue_id))
  MixtureRegistry.register("glue", glue_mixture)
  MixtureRegistry.register("glue_small", functools.partial(glue_mixture, tasks=SMALL,
                                                      name="glue_small"))


_register()

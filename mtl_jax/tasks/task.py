"""Task and TaskRegistry: a named, reusable description of one NLP task.

Modelled on seqio's Task: a task has a name, a kind (its shape: see
`kinds.py`), a data source, a label vocabulary, head options and metrics.
Named tasks live in a registry (`catalog.py` fills it); a config names them,
or defines a custom task inline in a few lines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import re
from typing import Any, Callable, Iterator, Mapping

from mtl_jax.tasks import sources
from mtl_jax.registry import Registry
from mtl_jax.tasks.kinds import EncodedSplit, get_kind


# The length a task outside a run truncates to when it sets none (BERT's).
UNSET_MAX_LENGTH = 512


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


@dataclasses.dataclass(frozen=True)
class Task:
  """One task of a multi-task run.

  Attributes:
    name: unique name; the key of its head, batch and metrics.
    kind: 'classification', 'pair_classification', 'regression',
      'pair_regression', 'multilabel', 'pair_multilabel', 'tagging' or
      'seq2seq' (see `kinds.KINDS`).
    source: where the splits are and how to read them.
    labels: the label vocabulary; None reads it from the train split.
    max_length: sub-word tokens per example, special tokens included; longer
      examples are truncated and counted. None: the run's largest bucket.
    head: head options (e.g. `pooling='mean'`, `dropout=0.1`).
    metrics: the metrics to report (None: the kind's defaults), e.g.
      `('matthews_corr',)`.
    kind_options: the kind's options, e.g. `{'range': (0, 5)}` for
      regression, `{'positive_label': '1'}` for the `f1` metric.
    batch_size: this task's examples per step (None: `train.batch_size`).
  """

  name: str
  kind: str
  source: sources.Source
  labels: tuple[str, ...] | None = None
  max_length: int | None = None
  head: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  metrics: tuple[str, ...] | None = None
  kind_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  batch_size: int | None = None

  def __post_init__(self):
    # The name becomes folder names (compare's runs), metric keys ('task/metric')
    # and config keys: a safe set of characters keeps every path inside its workdir.
    if not isinstance(self.name, str) or not _SAFE_NAME.match(self.name) or ".." in self.name:
      raise ValueError(f"task name {self.name!r}: use letters, digits, '_', '-' and '.', "
                       "starting with a letter or digit (it names folders and metrics)")
    if self.batch_size is not None and (not isinstance(self.batch_size, int)
                                        or self.batch_size < 1):
      raise ValueError(f"task {self.name}: batch_size must be a positive integer, got "
                       f"{self.batch_size!r}")
    if self.labels is not None:
      object.__setattr__(self, "labels", tuple(str(l) for l in self.labels))
    if self.metrics is not None:
      object.__setattr__(self, "metrics", tuple(self.metrics))
    self.spec  # pylint: disable=pointless-statement  # fails early on a bad kind

  @functools.cached_property
  def spec(self):
    """The kind object (with this task's options): encoding, head, loss, metrics."""
    options = dict(self.kind_options)
    if self.metrics is not None:
      options["metrics"] = self.metrics
    try:
      return get_kind(self.kind, **options)
    except ValueError as error:
      raise ValueError(f"task {self.name}: {error}") from None

  @contextlib.contextmanager
  def _named(self) -> Iterator[None]:
    """Adds the task's name to data errors (which name the file and line)."""
    try:
      yield
    except sources.DataError as error:
      raise sources.DataError(f"task {self.name}: {error}") from error
    except FileNotFoundError as error:
      raise FileNotFoundError(f"task {self.name}: {error}") from error

  def read(self, split: str) -> sources.RawSplit:
    with self._named():
      return sources.read_split(self.source, split, self.spec.fields)

  def label_vocab(self, train: sources.RawSplit | None = None) -> tuple[str, ...]:
    """The labels, as configured or read from the train split."""
    if self.labels is not None:
      return self.labels
    if train is None:
      train = self.read("train")
    return self.spec.label_vocab(train)

  def load(self, split: str, tokenizer, labels: tuple[str, ...],
           raw: sources.RawSplit | None = None) -> EncodedSplit:
    """Reads and tokenizes a split; an unknown label is an error naming its line."""
    raw = raw if raw is not None else self.read(split)
    with self._named():
      return self.spec.encode(raw, tokenizer, labels, self.max_length or UNSET_MAX_LENGTH)

  @classmethod
  def from_config(cls, name: str, spec: Mapping[str, Any]) -> "Task":
    """Builds a task from a config entry.

    Args:
      name: the task name.
      spec: `kind`, `source` (a dict of `Source` fields) and optional `labels`,
        `max_length`, `head`, `metrics`, `kind_options`.

    Raises:
      ValueError: an unknown key (named, with the closest known one).
    """
    spec = dict(spec)
    _check_keys(f"tasks.{name}", spec, {f.name for f in dataclasses.fields(cls)} - {"name"})
    if "kind" not in spec or "source" not in spec:
      raise ValueError(f"tasks.{name}: a custom task needs 'kind' and 'source'")
    source_spec = dict(spec.pop("source"))
    _check_keys(f"tasks.{name}.source", source_spec,
                {f.name for f in dataclasses.fields(sources.Source)})
    spec["source"] = sources.Source(**source_spec)
    if spec.get("labels") is not None:
      spec["labels"] = tuple(spec["labels"])
    spec["head"] = dict(spec.get("head", {}))
    spec["kind_options"] = dict(spec.get("kind_options", {}))
    return cls(name=name, **spec)


def _check_keys(where: str, given: Mapping[str, Any], known: set[str]) -> None:
  for key in given:
    if key not in known:
      close = difflib.get_close_matches(key, known, n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      raise ValueError(f"{where}: unknown key {key!r}{hint}; known keys: "
                       f"{', '.join(sorted(known))}")


# Named task factories: `TaskRegistry.get('ag_news', data_dir=...)`.
TaskRegistry: Registry[Callable[..., Task]] = Registry("task")


def task_from_config(name: str, spec: Mapping[str, Any]) -> Task:
  """A registered task (spec without 'kind': options of its factory) or a custom one."""
  spec = dict(spec)
  if "kind" not in spec and name in TaskRegistry.names():
    return TaskRegistry.get(name, **spec)
  if "kind" not in spec:
    close = difflib.get_close_matches(name, TaskRegistry.names(), n=1)
    hint = f" (did you mean the registered task {close[0]!r}?)" if close else ""
    raise ValueError(f"tasks.{name}: not a registered task{hint}, and no 'kind' "
                     "given for a custom task")
  return Task.from_config(name, spec)

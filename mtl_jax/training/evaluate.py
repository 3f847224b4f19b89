"""Evaluation: predictions over a whole split, then each task's standard metrics."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import logging
import os

import jax
import numpy as np

from mtl_jax import metrics as metrics_lib
from mtl_jax.tasks.batching import eval_batches, with_token_slots
from mtl_jax.tasks.kinds import EncodedSplit
from mtl_jax.tasks.sources import HELDOUT

log = logging.getLogger(__name__)


def predict_split(predict_step: Callable, params: Any, task: str, split: EncodedSplit,
                  batch_size: int, buckets: Sequence[int], token_buckets: int = 0
                  ) -> list[Any]:
  """Predictions for every example of a split, in the split's order.

  Per example: what the kind's `predict` gives for one row (a label id, a
  score, a multi-hot row, the greedily decoded token ids of seq2seq), or the
  sub-word predictions of its real tokens (tagging).

  With `token_buckets` (the run's `train.token_buckets`, for a model that
  compacts tokens), the encoder runs on each batch's real tokens only: the
  same function. Batches in length order are still about half padding at
  the usual buckets; compacted, the recipes' evaluations took 0.52-0.62 of
  their padded time (BENCHMARKS.md, "Token compaction").
  """
  predictions: list[Any] = [None] * len(split)
  lengths = split.lengths
  for indices, batch in eval_batches(split, batch_size, buckets):
    step_batch = {task: batch}
    if token_buckets:
      step_batch = with_token_slots(step_batch, token_buckets)
    out = np.asarray(jax.device_get(predict_step(params, step_batch)[task]))
    for row, index in enumerate(indices):
      predictions[index] = out[row, :lengths[index]] if split.token_labels else out[row]
  return predictions


def evaluate(predict_step: Callable, params: Any, splits: Mapping[str, EncodedSplit],
             kinds: Mapping[str, Any], labels: Mapping[str, Sequence[str]],
             batch_size: int, buckets: Sequence[int], token_buckets: int = 0
             ) -> dict[str, dict[str, float]]:
  """Each task's metrics on its split: {task: {metric: value}}.

  `token_buckets`: see `predict_split`.
  """
  results = {}
  for name, split in splits.items():
    predictions = predict_split(predict_step, params, name, split, batch_size, buckets,
                                token_buckets)
    results[name] = kinds[name].evaluate(predictions, split, labels[name])
    _warn_if_one_class(name, kinds[name], predictions, split, labels[name])
    undefined = [metric for metric, value in results[name].items() if value != value]
    if undefined:
      log.warning("task %s: %s undefined (nan): its predictions are constant or not finite "
                  "(%s)", name, ", ".join(undefined), _describe(predictions))
  return results


def _warn_if_one_class(task: str, kind: Any, predictions: list[Any], split: EncodedSplit,
                       labels: Sequence[str]) -> None:
  """A classifier (or tagger) that predicts one label everywhere says so: its 0 F1 has a cause."""
  if kind.base_name == "classification":
    predicted = {labels[int(p)] for p in predictions}
  elif kind.base_name == "tagging":  # the words' tags, not the special tokens'
    predicted = {tag for tags in kind.decode(predictions, split, labels) for tag in tags}
  else:
    return
  if len(predicted) == 1 and len(labels) > 1:
    log.warning("task %s predicts %r for every %s (a majority-class model: not yet learned, "
                "or the learning rate or budget is too small)", task, predicted.pop(),
                "word" if kind.base_name == "tagging" else "example")


def _describe(predictions: list[Any]) -> str:
  values = np.concatenate([np.ravel(np.asarray(p, np.float64)) for p in predictions])
  bad = int(np.sum(~np.isfinite(values)))
  if bad:
    return f"{bad} of {values.size} predicted values are not finite: the head diverged"
  return f"every prediction is {values[0]:g}"


def metrics_filename(split: str, eval_split: str) -> str:
  """Where a workdir keeps its scores on `split`: metrics.json for the run's eval split."""
  return "metrics.json" if split == eval_split else f"metrics_{split}.json"


def declared_splits(tasks) -> list[str]:
  """Every split the tasks' sources declare besides train (with `heldout`), sorted."""
  declared = {name for t in tasks for name in t.source.splits}
  declared |= {HELDOUT} if any(t.source.holdout for t in tasks) else set()
  return sorted(declared - {"train"})


def report_splits(tasks, eval_split: str) -> list[str]:
  """The declared splits besides the run's eval split.

  Training scores each of them once after its last step (e.g. a `test`
  split: reported, never used to choose anything).
  """
  return [name for name in declared_splits(tasks) if name != eval_split]


def evaluate_workdir(workdir: str, split: str | None = None, step=None, *,
                     write: bool = False) -> dict[str, dict[str, float]]:
  """A trained workdir's checkpoint scored on one split of its tasks (`mtl_jax.evaluate`).

  Args:
    workdir: a training workdir.
    split: any split the tasks define ('eval', 'test', 'heldout', ...; default
      the run's `train.eval_split`); tasks without it are skipped with a note.
    step: the checkpoint: a step number, 'best' or latest (None).
    write: also write the scores into the workdir (`metrics_filename`: the
      run's eval split rewrites metrics.json, another split has its own file).

  Returns:
    {task: {metric: value}} for the tasks that have the split.

  Raises:
    ValueError: no task has the split (the known splits are listed).
  """
  from mtl_jax.training import run as run_lib
  from mtl_jax.training.step import make_predict_step

  run = run_lib.load(workdir)
  eval_split = run.config.train.eval_split
  split = split or eval_split
  having = [t for t in run.tasks if t.source.has_split(split)]
  if not having:
    known = declared_splits(run.tasks)
    raise ValueError(f"no task of {workdir} has a split {split!r}; the tasks' splits: "
                     f"{', '.join(known) or 'none besides train'}")
  for task in run.tasks:
    if task not in having:
      log.warning("task %s has no %r split: not evaluated", task.name, split)
  params = run_lib.restore_params(run, workdir, step)
  splits = {t.name: t.load(split, run.tokenizer, run.labels[t.name]) for t in having}
  results = evaluate(jax.jit(make_predict_step(run.model)), params, splits, run.kinds,
                     run.labels, run.config.train.eval_batch_size, run.config.train.buckets,
                     run.config.train.token_buckets)
  if write:
    metrics_lib.write_json(results, os.path.join(workdir, metrics_filename(split, eval_split)))
  return results

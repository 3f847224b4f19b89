"""Predictions from a trained workdir, for the CLI and for notebooks.

    predictor = Predictor.from_workdir("runs/demo")   # or Predictor.from_export(folder)
    predictor.predict("demo_ag_news", ["Stocks rally as the Fed holds rates."])
    predictor.predict("glue_rte", [("A man is sleeping.", "Nobody sleeps.")])
"""

from __future__ import annotations

from typing import Any, Sequence

import logging

import datasets
import jax
import numpy as np

from mtl_jax.tasks.sources import LINE, DataError, RawSplit
from mtl_jax.training import run as run_lib
from mtl_jax.training.evaluate import predict_split
from mtl_jax.training.step import make_predict_step

log = logging.getLogger(__name__)


class Predictor:
  """A trained model with its tokenizer and label vocabularies."""

  def __init__(self, run: run_lib.Run, params):
    self.run = run
    self.params = params
    self._predict_step = jax.jit(make_predict_step(run.model))
    self._scores_step = jax.jit(make_predict_step(run.model, scores=True))

  @classmethod
  def from_workdir(cls, workdir: str, step: int | str | None = None) -> "Predictor":
    """Loads a checkpoint of a training workdir: `step` = a number, 'best' or latest (None)."""
    run = run_lib.load(workdir)
    return cls(run, run_lib.restore_params(run, workdir, step))

  @classmethod
  def from_export(cls, path: str) -> "Predictor":
    """Loads an `mtl-jax export` folder (no workdir, no checkpoint needed)."""
    from mtl_jax.export import load_export

    return cls(*load_export(path))

  def predict(self, task: str, inputs: Sequence[Any], *, batch_size: int | None = None,
              scores: bool = False) -> list[Any]:
    """Predicts raw inputs of one task.

    Args:
      task: the task name.
      inputs: what the task's kind reads: texts (classification, regression,
        multi-label, seq2seq); for sentence-pair kinds (text, text_pair) pairs or
        'text<TAB>text_pair' strings; texts split on whitespace or lists of
        words (tagging).
      batch_size: inputs per device batch (default `train.eval_batch_size`).
      scores: also return each label's probability.

    Returns:
      One prediction per input: a label, a score (regression), a list of
      labels (multi-label), a list of tags (tagging, one per word), or a
      generated text (seq2seq, greedy decoding). With `scores`, a list of
      (prediction, scores) pairs: scores are {label: probability}
      (classification, multi-label), a list of those per word (tagging), or
      None (regression, seq2seq).

    Raises:
      KeyError: no such task in the run.
      DataError: an input the task cannot read (task and input named).
    """
    spec = self.run.task(task)
    kind, labels = spec.spec, self.run.labels[task]
    try:
      fields = kind.raw_inputs(list(inputs), labels)
      fields[LINE] = list(range(1, len(inputs) + 1))
      raw = RawSplit(datasets.Dataset.from_dict(fields), "<input>", unit="input")
      split = kind.encode(raw, self.run.tokenizer, labels, spec.max_length)
    except DataError as error:
      raise DataError(f"task {task}: {error}") from error
    if split.num_truncated:
      self._warn_truncated(task, fields, split.lengths, spec.max_length)
    config = self.run.config.train
    batch_size = batch_size or config.eval_batch_size
    predictions = kind.decode(predict_split(self._predict_step, self.params, task, split,
                                            batch_size, config.buckets), split, labels)
    if not scores:
      return predictions
    if self.run.model.outputs[task].scores is None:
      return [(p, None) for p in predictions]
    probabilities = kind.decode_scores(
        predict_split(self._scores_step, self.params, task, split, batch_size,
                      config.buckets), split, labels)
    return list(zip(predictions, probabilities))

  def _warn_truncated(self, task: str, fields: dict[str, list], lengths: Any,
                      max_length: int) -> None:
    """One line naming the inputs cut to `max_length` tokens and the words each lost."""
    tokenizer, cut = self.run.tokenizer, []
    # Only an input encoded to exactly max_length tokens can have been cut:
    # those alone are encoded again, whole, to count what was lost.
    for row in np.flatnonzero(np.asarray(lengths) == max_length):
      if "tokens" in fields:  # tagging: the input's own words
        encoding = tokenizer.encode(fields["tokens"][row], is_pretokenized=True)
      elif fields.get("text_pair"):
        encoding = tokenizer.encode(fields["text"][row], fields["text_pair"][row])
      else:
        encoding = tokenizer.encode(fields["text"][row])
      if len(encoding.ids) <= max_length:
        continue
      # Word ids restart in a pair's second text: count (sequence, word) pairs.
      words = set(zip(encoding.sequence_ids, encoding.word_ids))
      words.discard((None, None))
      # The truncated input ends in a special token ([SEP]).
      kept = {(s, w) for s, w in zip(encoding.sequence_ids[:max_length - 1],
                                     encoding.word_ids[:max_length - 1]) if w is not None}
      cut.append(f"input {fields[LINE][row]}: {len(words) - len(kept)} of {len(words)} "
                 "words cut")
    if cut:
      log.warning("task %s: %d input(s) longer than max_length %d tokens were cut, their "
                  "predictions see only the start (%s%s)", task, len(cut), max_length,
                  "; ".join(cut[:5]), "; ..." if len(cut) > 5 else "")

  def show(self, task: str, prediction: Any) -> str:
    """One prediction of `task` as text: a label, a score, labels or tags."""
    return self.run.task(task).spec.show(prediction)

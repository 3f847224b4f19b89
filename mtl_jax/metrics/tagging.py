"""Entity-level span metrics of IOB/IOB2 tag sequences, computed by seqeval.

seqeval's default mode is the CoNLL-2000 `conlleval` script's: a span
starts at B-X, or at I-X after a tag of another type; so both IOB1 and IOB2
files score as the shared task did.
"""

from __future__ import annotations

from typing import Sequence


def span_scores(predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]
                ) -> dict[str, float]:
  """Micro-averaged entity precision, recall and F1 over all sentences.

  Args:
    predicted: predicted tags, one list per sentence.
    gold: gold tags, aligned with `predicted` word for word.

  Returns:
    {'span_f1', 'span_precision', 'span_recall'}.
  """
  if len(predicted) != len(gold) or any(
      len(p) != len(g) for p, g in zip(predicted, gold)):
    raise ValueError("predicted and gold tag sequences are not aligned")
  if not any(len(g) for g in gold):
    raise ValueError("no tagged words to score")
  # Imported when scoring, not at start-up: seqeval imports scikit-learn
  # (see `classification._sk`).
  from seqeval import metrics as seqeval_metrics  # pylint: disable=import-outside-toplevel

  predicted, gold = [list(p) for p in predicted], [list(g) for g in gold]
  return {
      "span_f1": float(seqeval_metrics.f1_score(gold, predicted, zero_division=0)),
      "span_precision": float(
          seqeval_metrics.precision_score(gold, predicted, zero_division=0)),
      "span_recall": float(
          seqeval_metrics.recall_score(gold, predicted, zero_division=0)),
  }


def token_accuracy(predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]
                   ) -> float:
  """Fraction of words whose tag is right."""
  pairs = [(p, g) for ps, gs in zip(predicted, gold) for p, g in zip(ps, gs)]
  if not pairs:
    raise ValueError("no tagged words to score")
  return sum(p == g for p, g in pairs) / len(pairs)

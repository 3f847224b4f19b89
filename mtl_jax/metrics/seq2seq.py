"""Metrics of generated text: exact match, token F1 (SQuAD's) and corpus BLEU (sacrebleu)."""

from __future__ import annotations

import collections
from typing import Sequence

import sacrebleu


def exact_match(predicted: Sequence[str], references: Sequence[str]) -> float:
  """Fraction of predictions equal to their reference (whitespace-normalised)."""
  _check_aligned(predicted, references)
  pairs = list(zip(predicted, references))
  return sum(p.split() == r.split() for p, r in pairs) / max(len(pairs), 1)


def token_f1(predicted: Sequence[str], references: Sequence[str]) -> float:
  """Mean over examples of the F1 of the bags of whitespace tokens (as SQuAD scores answers).

  Two empty strings agree (F1 1); an empty string against a non-empty one scores 0.
  """
  _check_aligned(predicted, references)
  scores = []
  for prediction, reference in zip(predicted, references):
    p, r = prediction.split(), reference.split()
    if not p or not r:
      scores.append(float(p == r))
      continue
    common = sum((collections.Counter(p) & collections.Counter(r)).values())
    scores.append(0.0 if common == 0 else
                  2 * common / (len(p) + len(r)))
  return sum(scores) / max(len(scores), 1)


def bleu(predicted: Sequence[str], references: Sequence[str]) -> float:
  """Corpus BLEU (0-100) with sacrebleu's defaults (13a tokenisation, one reference)."""
  _check_aligned(predicted, references)
  return float(sacrebleu.corpus_bleu(list(predicted), [list(references)]).score)


def _check_aligned(predicted: Sequence[str], references: Sequence[str]) -> None:
  if len(predicted) != len(references):
    raise ValueError(f"{len(predicted)} predictions for {len(references)} references")

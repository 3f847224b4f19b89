"""Task kinds: what each shape of NLP task reads, encodes and scores.

The head and loss columns are the model layer's side of each kind
(`mtl_jax.heads.OUTPUTS`); nothing here imports it.

| kind | fields | head, loss | metrics |
| --- | --- | --- | --- |
| `classification`, `pair_classification` | text (+ text_pair), label | pooled -> softmax CE | accuracy, macro_f1, f1, matthews_corr |
| `regression`, `pair_regression` | text (+ text_pair), label (a number) | pooled -> 1 output, MSE | pearson, spearman, mse |
| `multilabel`, `pair_multilabel` | text (+ text_pair), label (a set) | pooled -> sigmoid CE per label | micro_f1, macro_f1, subset_accuracy |
| `tagging` | tokens, tags | per token -> softmax CE | span_f1/precision/recall, token_accuracy |
| `seq2seq` | text, target | Transformer decoder, per-token CE; greedy decoding | exact_match, token_f1, bleu |

`KINDS` holds each kind with its default options; `get_kind(name, **options)`
gives one with a task's options (`kind_options` and `metrics`). A new kind
is a `Kind` subclass registered in `KINDS` (`register_kind`).
"""

from __future__ import annotations

import dataclasses

from mtl_jax.registry import Registry
from mtl_jax.tasks.kinds.base import EncodedSplit, Kind
from mtl_jax.tasks.kinds.classification import Classification
from mtl_jax.tasks.kinds.multilabel import MultiLabel
from mtl_jax.tasks.kinds.regression import Regression
from mtl_jax.tasks.kinds.seq2seq import Seq2Seq, Seq2SeqSplit
from mtl_jax.tasks.kinds.sequence import SequenceKind
from mtl_jax.tasks.kinds.tagging import Tagging

KINDS: Registry[Kind] = Registry("task kind")
for _kind in (Classification(), Classification(pair=True),
              Regression(), Regression(pair=True),
              MultiLabel(), MultiLabel(pair=True),
              Tagging(),
              Seq2Seq()):
  KINDS.register(_kind.name, _kind)


def register_kind(kind: Kind) -> None:
  """Adds a kind (with its default options) to `KINDS`, under its `name`.

  Its head, loss and prediction are the model layer's (`mtl_jax.heads.OUTPUTS`,
  chosen by the kind's `base_name`).

  Raises:
    ValueError: a kind of that name is already registered.
  """
  KINDS.register(kind.name, kind)


def get_kind(name: str, **options) -> Kind:
  """The kind `name`, with options (its dataclass fields, e.g. `range=(0, 5)`).

  Raises:
    ValueError: an unknown kind or option (named, with the known ones).
  """
  kind = KINDS[name]
  if not options:
    return kind
  known = {f.name for f in dataclasses.fields(kind)} - {"pair"}
  unknown = sorted(set(options) - known)
  if unknown:
    raise ValueError(f"kind {name!r}: unknown option(s) {unknown}; its options are "
                     f"{sorted(known)}")
  return dataclasses.replace(kind, **options)

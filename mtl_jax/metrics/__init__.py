"""Per-task metrics and reports."""

from mtl_jax.metrics.classification import accuracy, macro_f1
from mtl_jax.metrics.report import format_table, write_json
from mtl_jax.metrics.seq2seq import bleu, exact_match, token_f1
from mtl_jax.metrics.tagging import span_scores, token_accuracy

"""Per-task metrics, the GLUE score and reports."""

from mtl_jax.metrics.classification import (accuracy, binary_f1, macro_f1,
                                            matthews_corr, multilabel_scores)
from mtl_jax.metrics.glue import glue_average, glue_task_score
from mtl_jax.metrics.regression import mse, pearson, spearman
from mtl_jax.metrics.report import format_table, write_json
from mtl_jax.metrics.seq2seq import bleu, exact_match, token_f1
from mtl_jax.metrics.tagging import span_scores, token_accuracy

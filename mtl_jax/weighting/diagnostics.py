"""Per-step balancing diagnostics: task gradient norms and conflicts.

`gradient_cosines(grads_k)` is the [k, k] matrix of pairwise cosine
similarities of per-task gradients (negative entries are conflicts); it is
also the measured task relatedness of `mtl_jax` (gradient similarity over
training). The train step reports `grad_norms` and `grad_cosines` from the
Gram matrix it already has for the balancing method, so they cost [k, k]
arithmetic.
"""

from __future__ import annotations

from typing import Any

import jax

from mtl_jax.weighting import linalg


def gradient_cosines(grads_k: Any) -> jax.Array:
  """[k, k] cosine similarity of per-task gradients (leading axis k on every leaf).

  Rows and columns of tasks with a zero gradient are 0.
  """
  return linalg.cosines_from_gram(linalg.gram(grads_k))


def gradient_norms(grads_k: Any) -> jax.Array:
  """[k] L2 norm of each task's gradient."""
  return linalg.norms(grads_k)


def from_gram(gram_kk: jax.Array) -> dict[str, jax.Array]:
  """The step's diagnostics from the Gram matrix of its per-task gradients."""
  return {"grad_norms": linalg.norms_from_gram(gram_kk),
          "grad_cosines": linalg.cosines_from_gram(gram_kk)}

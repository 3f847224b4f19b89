"""DualProj (Lopez-Paz & Ranzato, NeurIPS 2017, "Gradient Episodic Memory for
Continual Learning", Eq. 11; as in torchjd, Quinton & Rey 2024).

The mean of the task gradients, projected onto the dual cone of the task
gradients (the directions that increase no loss): the update is `J^T w` with
`w = argmin_{v >= u} v^T G v` and `u` the mean's weights (1/T each), the QP
that UPGrad solves once per task, here once. Solved exactly in JAX
(`linalg.min_quadratic_above`), with torchjd's trace normalisation and
`1e-4 I` ridge. Absent tasks are left out.
"""

from __future__ import annotations

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import from_gram, init_empty, present_mask, register


@register("dualproj")
def dualproj(norm_eps: float = 1e-4, reg_eps: float = 1e-4):
  """DualProj with the mean as preference (see module docstring).

  Args:
    norm_eps: below this trace, the Gram matrix counts as zero (torchjd's).
    reg_eps: ridge added to the normalised Gram matrix (torchjd's).
  """

  def weigh(gram_kk, state, **extras):
    present_k = present_mask(extras, gram_kk.shape[0])
    normalized_kk = linalg.trace_normalized(gram_kk, present_k, norm_eps, reg_eps)
    weights_k, _ = linalg.min_quadratic_above(normalized_kk, linalg.uniform(present_k))
    return weights_k * present_k, state

  return from_gram(init_empty, weigh)

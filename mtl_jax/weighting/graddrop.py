"""GradDrop (Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, NeurIPS
2020, "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign
Dropout").

Per coordinate, the sign purity `P = 1/2 (1 + sum_i g_i / sum_i |g_i|)` sets
the chance of keeping the positive parts: with `U ~ Uniform(0, 1)`, task i's
gradient is kept where `(P > U and g_i > 0) or (P < U and g_i < 0)`, and the
update is the sum of the kept gradients (`leak` in [0, 1] lets that
fraction through unmasked; 0, the paper's default, is full GradDrop). The
mask is elementwise, not a combination of the task gradients, so GradDrop
needs per-task gradients of every shared parameter: `gradient_mode='full'`.
(The paper applies it at the shared representation; in this library each
task has its own examples, so per-task representation gradients never
share a coordinate and the mask would keep everything.) Needs `rng`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.weighting import linalg
from mtl_jax.weighting.base import (GradientAggregation, init_empty, present_mask,
                                    register, require_rng)


@register("graddrop")
def graddrop(leak: float = 0.0) -> GradientAggregation:
  """GradDrop (see module docstring).

  Args:
    leak: fraction of every task's gradient passed through unmasked.
  """
  if not 0.0 <= leak <= 1.0:
    raise ValueError(f"graddrop: leak must be in [0, 1], got {leak}")

  def update(grads_k, state, **extras):
    leaves, treedef = jax.tree.flatten(grads_k)
    present_k = present_mask(extras, leaves[0].shape[0])
    leaves = jax.tree.leaves(linalg.mask_tasks(leaves, present_k))
    keys = jax.random.split(require_rng(extras, "graddrop"), len(leaves))

    def one(leaf_k, key):
      leaf_k = leaf_k.astype(jnp.float32)
      total = jnp.sum(leaf_k, axis=0)
      purity = 0.5 * (1.0 + total / jnp.maximum(jnp.sum(jnp.abs(leaf_k), axis=0), 1e-30))
      # Broadcast over the task axis explicitly (rank promotion is an error).
      keep_positive = (purity > jax.random.uniform(key, purity.shape))[None]
      keep_k = (keep_positive & (leaf_k > 0)) | (~keep_positive & (leaf_k < 0))
      kept_k = leak + (1.0 - leak) * keep_k.astype(jnp.float32)
      return jnp.sum(kept_k * leaf_k, axis=0)

    summed = [one(leaf, key).astype(leaf.dtype) for leaf, key in zip(leaves, keys)]
    return jax.tree.unflatten(treedef, summed), state

  return GradientAggregation(init_empty, update, gradient_mode="full", modes=("full",))

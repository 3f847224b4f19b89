"""Balancing the tasks: loss weighting and gradient aggregation as pure transforms.

Importing the package registers every method; `from_spec` builds one from
its config string. Loss weighting: equal, static, norm_ratio, loss_sigmoid,
gradnorm, dwa, uncertainty, rlw, famo, gls, imtl_l, scale_invariant, stch.
Gradient aggregation: pcgrad, mgda, mgda_ub, cagrad, imtl_g, aligned_mtl,
nash_mtl, gradvac, graddrop,
upgrad, dualproj, config (ConFIG), fairgrad, krum, trimmed_mean, modo,
sdmgrad, cr_mogm (over another method), excess_mtl, moco, db_mtl, task_rms,
task_clip.
"""

# Each import registers its method(s).
from mtl_jax.weighting import (aligned_mtl, cagrad, conflict_free, cr_mogm, db_mtl, dualproj, dwa,
                               excess_mtl, fairgrad, famo, gls, graddrop, gradnorm, gradvac, imtl,
                               imtl_l, krum, loss_sigmoid, mgda, moco, modo, nash_mtl, norm_ratio,
                               pcgrad, rlw, scale_invariant, sdmgrad, static, stch, task_rms,
                               trimmed_mean, uncertainty, upgrad)
from mtl_jax.weighting.base import (GRADIENT_MODES, EmptyState, GradientAggregation,
                                    LossWeighting, from_gram, from_spec, init_empty, names,
                                    present_mask, register)
from mtl_jax.weighting.diagnostics import gradient_cosines, gradient_norms

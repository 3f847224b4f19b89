"""Balancing the tasks: loss weighting and gradient aggregation as pure transforms."""

from mtl_jax.weighting import static  # registers equal, static
from mtl_jax.weighting.base import (EmptyState, GradientAggregation, LossWeighting,
                                    from_spec, names, parse_spec, register)

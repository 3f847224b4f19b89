"""Sharing architectures: how the tasks share the encoder."""

from mtl_jax.sharing.hard import HardSharingModel, TaskHead

"""Checkpoints of a run with orbax: the train state plus JSON metadata.

A checkpoint is `{"state": TrainState, "meta": {...}}` under
`WORKDIR/checkpoints/<step>`; `meta` holds what is not an array (the
position of every task's data stream). Orbax writes into a temporary
directory and renames it when complete, so an interrupted save never
replaces the previous good checkpoint.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores train states under `directory`.

  Args:
    directory: the checkpoint folder (created on first save).
    max_to_keep: how many recent checkpoints to keep.
  """

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    """Starts saving (asynchronously); `wait()` blocks until it is on disk."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def restore(self, abstract_state: Any, step: int | None = None
              ) -> tuple[Any, dict[str, Any]]:
    """Restores a checkpoint into the structure (and shardings) of `abstract_state`.

    Args:
      abstract_state: a pytree of `jax.ShapeDtypeStruct` (e.g. from
        `jax.eval_shape`) or arrays, the shape of the saved state.
      step: which checkpoint; the latest when None.

    Returns:
      (state, meta).

    Raises:
      FileNotFoundError: there is no checkpoint.
      ValueError: the checkpoint does not fit `abstract_state`.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{self.directory}: no checkpoint to restore")
    abstract_state = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError) as error:
      raise ValueError(f"{self.directory}/{step}: checkpoint does not match this "
                       f"run's model or optimizer: {error}") from error
    return restored["state"], restored["meta"]

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()

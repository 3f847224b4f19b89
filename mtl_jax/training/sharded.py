"""The train state and step on a mesh: created sharded, stepped sharded and donated."""

from __future__ import annotations

from typing import Any, Callable

import jax

from mtl_jax.sharding import Layout
from mtl_jax.training.nonfinite import StreakCounts, advance, skip_nonfinite


def create_state(init: Callable[..., Any], abstract_state: Any, layout: Layout,
                 pretrained_encoder: Any = None, pretrained_axes: Any = None) -> Any:
  """Runs `init(pretrained_encoder)` jitted, each device creating only its shards.

  Args:
    init: the pure state initialiser (`training.run.make_state_init`).
    abstract_state: its output's `ShapeDtypeStruct`s with shardings
      (`training.run.abstract_state`).
    layout: the mesh and rules.
    pretrained_encoder: host arrays of a whole pretrained encoder's params, or None.
    pretrained_axes: their logical axes (`mtl_jax.encoders.logical_axes`). Not
      the model's `params["encoder"]` axes: a sharing architecture may keep
      only part of the encoder there and copy the rest into each task.

  Returns:
    The step-0 state, laid out as `abstract_state` says.
  """
  shardings = jax.tree.map(lambda x: x.sharding, abstract_state)
  if pretrained_encoder is not None:
    if pretrained_axes is None:
      raise ValueError("create_state: pass the pretrained encoder's pretrained_axes")
    pretrained_encoder = layout.put(pretrained_encoder,
                                    layout.shardings(pretrained_encoder, pretrained_axes))
  return jax.jit(init, out_shardings=shardings)(pretrained_encoder)


def jit_loop_step(pure_step: Callable, abstract_state: Any, layout: Layout,
                  max_nonfinite_in_a_row: int = 0
                  ) -> Callable[[Any, StreakCounts, Any],
                                tuple[Any, StreakCounts, dict[str, jax.Array]]]:
  """`loop_step(state, counts, batch) -> (state, counts, metrics)`: the pure train
  step as the loop runs it, jitted (once per batch shape), state donated.

  Step s gets the dropout key `fold_in(state.rng, s)` (computed on device),
  non-finite updates are skipped (`nonfinite.skip_nonfinite`) and counted in
  `counts` (`nonfinite.advance`, on device: the host reads them only when it
  logs or checkpoints), the new state keeps the old one's layout and the
  metrics are replicated.

  Args:
    pure_step: `train_step(state, batch, rng) -> (state, metrics)`.
    abstract_state: the state's `ShapeDtypeStruct`s with their shardings.
    layout: the mesh and its rules.
    max_nonfinite_in_a_row: the streak of skipped steps that stops the run
      (recorded in `counts.stopped_at`; 0: never).
  """
  guarded = skip_nonfinite(pure_step)

  def loop_step(state, counts, batch):  # the name compile logs show: jit(loop_step)
    new_state, metrics = guarded(state, batch, jax.random.fold_in(state.rng, state.step))
    counts = advance(counts, metrics["skipped"], state.step + 1, max_nonfinite_in_a_row)
    return new_state, counts, metrics

  shardings = jax.tree.map(lambda x: x.sharding, abstract_state)
  return jax.jit(loop_step, out_shardings=(shardings, layout.replicated, layout.replicated),
                 donate_argnums=0)

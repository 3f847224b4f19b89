"""The optax optimizer of a run: AdamW, warm-up then decay, gradient clipping.

With `accumulate_steps=n` the optimizer is wrapped in `optax.MultiSteps`: it
steps once every n train steps, on the mean of their gradients, so a batch
n times larger than fits in memory trains as one. Whatever the train step
does to a micro-batch's gradient (clipping aside: that runs on the mean),
e.g. a balancing method aggregating per-task gradients, it does per
micro-batch, before the mean.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import optax

from mtl_jax.promotion import standard_promotion


def learning_rate_schedule(peak: float, warmup_steps: int, total_steps: int,
                           kind: str = "linear") -> optax.Schedule:
  """Linear warm-up to `peak`, then linear or cosine decay to 0, or constant."""
  decay_steps = max(total_steps - warmup_steps, 1)
  if kind == "linear":
    decay = optax.linear_schedule(peak, 0.0, decay_steps)
  elif kind == "cosine":
    decay = optax.cosine_decay_schedule(peak, decay_steps)
  elif kind == "constant":
    decay = optax.constant_schedule(peak)
  else:
    raise ValueError(f"unknown schedule {kind!r}; use linear, cosine or constant")
  if warmup_steps <= 0:
    return decay
  warmup = optax.linear_schedule(0.0, peak, warmup_steps)
  return optax.join_schedules([warmup, decay], [warmup_steps])


def decay_mask(params) -> Any:
  """True for weight matrices and embeddings; biases and LayerNorm scales are not decayed."""

  def is_decayed(path, _):
    return getattr(path[-1], "key", None) not in ("bias", "scale")

  return jax.tree_util.tree_map_with_path(is_decayed, params)


def make_optimizer(config: Mapping[str, Any], total_steps: int,
                   frozen: Sequence[str] = ()
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """AdamW with BERT's recipe, from `config.optimizer`.

  Args:
    config: the `optimizer` section of a run config.
    total_steps: the run's length (for the decay).
    frozen: top-level params entries left unchanged (zero updates, no weight
      decay, no optimizer state, not in the clipping norm), e.g. the encoder
      under adapters (`model.frozen_keys`).

  Returns:
    (optimizer, learning-rate schedule as a function of the train step).

  Raises:
    ValueError: `total_steps` is not a multiple of `accumulate_steps`.
  """
  accumulate = config.get("accumulate_steps", 1)
  if accumulate < 1 or total_steps % accumulate:
    raise ValueError(f"train.steps ({total_steps}) must be a multiple of "
                     f"optimizer.accumulate_steps ({accumulate})")
  schedule = learning_rate_schedule(config["learning_rate"], config["warmup_steps"],
                                    total_steps // accumulate, config["schedule"])
  parts = []
  if config["clip_norm"] and config["clip_norm"] > 0:
    parts.append(optax.clip_by_global_norm(config["clip_norm"]))
  parts.append(optax.adamw(schedule, b1=config["b1"], b2=config["b2"],
                           eps=config["eps"], weight_decay=config["weight_decay"],
                           mask=decay_mask))
  optimizer = optax.chain(*parts)
  if frozen:
    optimizer = optax.multi_transform(
        {"train": optimizer, "frozen": optax.set_to_zero()},
        lambda params: {key: jax.tree.map(lambda _, k=key: "frozen" if k in frozen
                                          else "train", value)
                        for key, value in params.items()})
  if accumulate == 1:
    return standard_promotion(optimizer), schedule
  # The inner optimizer (and its schedule) counts updates, not train steps.
  return (standard_promotion(
      optax.MultiSteps(optimizer, every_k_schedule=accumulate).gradient_transformation()),
          lambda step: schedule(step // accumulate))

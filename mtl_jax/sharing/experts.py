"""Mixtures of experts over the encoder's upper layers: MMoE, CGC and PLE.

* MMoE (Ma et al., KDD 2018, "Modeling Task Relationships in Multi-task
  Learning with Multi-gate Mixture-of-Experts"): `num_experts` experts
  shared by all tasks, each a copy of the upper layers; each task's gate
  mixes their outputs.
* CGC (Tang et al., RecSys 2020, "Progressive Layered Extraction (PLE)"):
  shared experts plus experts of each task's own; a task's gate mixes the
  shared experts and its own.
* PLE (the same paper): CGC stacked in `levels` levels, the upper layers
  split among them in order; a task's mixture at one level is the input of
  its experts and gate at the next.

An expert is a stack of encoder layers; the embeddings and the lower
`shared_layers` layers are one trunk every task shares (as in layer-wise
sharing). A gate is a softmax over the experts of a linear map of its
task's input to the level, per token (each row is a sequence; a tagging
head reads every token). Like LibMTL's MMoE, CGC and PLE, which these
follow, every task keeps one stream of hidden states: the paper's PLE also
has a shared gate feeding the next level's shared experts, which LibMTL
leaves out, and so do we (each task here has its own examples, so a shared
stream would only carry that task's rows again).

    params = {"encoder": {embeddings, layer_0 .. layer_{S-1},                # the trunk
                          "experts": {"level_j": {"expert_e": {layer_i}}}},  # shared
              "task_experts": {task: {"level_j": {"expert_e": {layer_i}}}},  # CGC, PLE
              "gates": {task: {"level_j": {"kernel": [d, E], "bias": [E]}}},
              "heads": {task: ...}}

The shared experts live in `params["encoder"]`, so the balancing methods
balance them with the trunk (LibMTL's shared parameters are its experts).
`encode` returns each task's final mixture (the representation its head
reads, LibMTL's per-task representation); `apply_heads` is hard sharing's.
With a pretrained encoder put in place every expert starts as a copy of its
layers, so at step 0 the model computes hard sharing whatever the gates
(their weights sum to 1). Gates start small and random (normal with the
encoder's initializer range), so the experts get different gradients from
the first step and part.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np

from mtl_jax.encoders.bert import Encoder
from mtl_jax.encoders.config import EncoderConfig
from mtl_jax.sharing.hard import (HardSharingModel, Params, TaskBatch, TaskHead,
                                  dropout_rngs, split_tasks, stack_tasks)
from mtl_jax.sharing.layerwise import resolve_shared_layers, separate_copy

EXPERTS = "experts"


def split_levels(layers: Sequence[int], levels: int, kind: str) -> tuple[tuple[int, ...], ...]:
  """`layers` in `levels` contiguous groups, as even as they go (lower ones larger).

  Raises:
    ValueError: fewer layers than levels, or levels < 1.
  """
  if not 1 <= levels <= len(layers):
    raise ValueError(f"sharing.{kind}.levels={levels}: there are {len(layers)} upper "
                     f"layer(s) to split, so it must be in [1, {len(layers)}] (raise "
                     f"the layers above the trunk with a lower sharing.{kind}.shared_layers)")
  return tuple(tuple(int(i) for i in group) for group in np.array_split(layers, levels))


def gate(params: Params, x_bld: jax.Array) -> jax.Array:
  """A gate's weights over the experts, per token: softmax(x W + b) [b, l, e]."""
  logits_ble = (jnp.einsum("bld,de->ble", x_bld.astype(jnp.float32), params["kernel"])
                + params["bias"][None, None, :])
  return jax.nn.softmax(logits_ble, axis=-1)


def mix(weights_ble: jax.Array, experts_ebld: jax.Array) -> jax.Array:
  """The experts' outputs weighted by a gate: [b, l, d] (in the experts' dtype)."""
  return jnp.einsum("ble,ebld->bld", weights_ble.astype(experts_ebld.dtype), experts_ebld)


class ExpertsModel(HardSharingModel):
  """A shared trunk, then levels of shared and per-task experts mixed by task gates.

  The kinds `mmoe`, `cgc` and `ple` are this model with their papers' options
  (see the module docstring).

  Args:
    encoder_config: the whole encoder's architecture.
    tasks: the tasks' heads.
    shared_layers: lower layers in the trunk (negative: counted from the top);
      the layers above it are the experts'.
    levels: how many levels the experts' layers are split into.
    shared_experts: experts every task's gate mixes, per level.
    task_experts: experts of each task's own, per level.
  """

  task_keys = ("heads", "task_experts", "gates")
  compacts_tokens = False  # its own `encode` (trunk, experts, gates) runs every slot
  kind = "ple"

  def __init__(self, encoder_config: EncoderConfig, tasks: Sequence[TaskHead],
               shared_layers: int = -2, levels: int = 2, shared_experts: int = 1,
               task_experts: int = 1):
    super().__init__(encoder_config, tasks)
    num_layers = encoder_config.num_layers
    for name, value in (("shared_experts", shared_experts), ("task_experts", task_experts)):
      if value < 0:
        raise ValueError(f"sharing.{self.kind}.{name} must be >= 0, got {value}")
    if shared_experts + task_experts < 1:
      raise ValueError(f"sharing.{self.kind}: a gate needs at least one expert "
                       f"(shared_experts={shared_experts}, task_experts={task_experts})")
    self.shared_layers = resolve_shared_layers(shared_layers, num_layers, self.kind)
    self.levels = split_levels(range(self.shared_layers, num_layers), levels, self.kind)
    self.shared_experts = shared_experts
    self.task_experts = task_experts
    self.encoder = Encoder(encoder_config, layers=tuple(range(self.shared_layers)))
    self.level_encoders = tuple(Encoder(encoder_config, layers=level, embeddings=False)
                                for level in self.levels)

  def init_boxed(self, rng: jax.Array) -> Params:
    params = super().init_boxed(rng)
    d = self.encoder_config.hidden_size
    hidden_bld = jnp.zeros((1, 8, d), jnp.float32)
    mask_bl = jnp.ones((1, 8), jnp.int32)
    experts_rng, task_rng, gates_rng = (jax.random.fold_in(rng, i) for i in (1, 2, 3))

    def experts(key, j, count):
      return {f"expert_{e}": self.level_encoders[j].init(
                  jax.random.fold_in(key, e), hidden_bld, mask_bl)["params"]
              for e in range(count)}

    params["encoder"][EXPERTS] = {
        f"level_{j}": experts(jax.random.fold_in(experts_rng, j), j, self.shared_experts)
        for j in range(len(self.levels))}
    if self.task_experts:
      params["task_experts"] = {
          name: {f"level_{j}": experts(jax.random.fold_in(task_rng, k * len(self.levels) + j),
                                       j, self.task_experts)
                 for j in range(len(self.levels))}
          for k, name in enumerate(self.task_names)}
    init = nn.initializers.normal(self.encoder_config.initializer_range)
    count = self.shared_experts + self.task_experts
    params["gates"] = {
        name: {f"level_{j}": {
            "kernel": nn.LogicallyPartitioned(
                init(jax.random.fold_in(gates_rng, k * len(self.levels) + j), (d, count)),
                ("embed", None)),
            "bias": nn.LogicallyPartitioned(jnp.zeros((count,)), (None,))}
            for j in range(len(self.levels))}
        for k, name in enumerate(self.task_names)}
    return params

  def with_encoder(self, params: Params, encoder_params: Params) -> Params:
    """Puts a whole encoder in place: the trunk shared, every expert a copy of its layers."""
    upper = {f"layer_{i}" for level in self.levels for i in level}
    trunk = {k: v for k, v in encoder_params.items() if k not in upper}

    def copies(count, j):
      return {f"expert_{e}": {f"layer_{i}": separate_copy(encoder_params[f"layer_{i}"])
                              for i in self.levels[j]}
              for e in range(count)}

    levels = range(len(self.levels))
    params = {**params, "encoder": {
        **trunk, EXPERTS: {f"level_{j}": copies(self.shared_experts, j) for j in levels}}}
    if self.task_experts:
      params["task_experts"] = {name: {f"level_{j}": copies(self.task_experts, j)
                                       for j in levels}
                                for name in self.task_names}
    return params

  def _expert_rngs(self, rng: jax.Array | None, train: bool, j: int, e: int
                   ) -> dict[str, jax.Array]:
    """Dropout keys of expert e of level j (shared experts first, then each task's).

    Apart from the trunk's (0) and the heads' (1..K).
    """
    rngs = dropout_rngs(rng, len(self.task_names) + 1 + j, train)
    return dropout_rngs(rngs["dropout"], e, train) if train else rngs

  def encode(self, params: Params, batch: Mapping[str, TaskBatch], *, train: bool,
             rng: jax.Array | None = None) -> dict[str, jax.Array]:
    """Each task's final mixture of experts: {task: [b_t, l, d]}.

    The trunk and each shared expert run once over the rows of all tasks
    stacked; a task's own experts and gate over its rows alone.
    """
    names = [n for n in self.task_names if n in batch]
    inputs, sizes = stack_tasks(batch, names)
    mask_bl = inputs["attention_mask"]
    x_bld = self.encoder.apply(
        {"params": {k: v for k, v in params["encoder"].items() if k != EXPERTS}},
        inputs["input_ids"], mask_bl, inputs["token_type_ids"], deterministic=not train,
        rngs=dropout_rngs(rng, 0, train))
    masks = split_tasks(mask_bl, names, sizes)
    for j, encoder in enumerate(self.level_encoders):
      level = f"level_{j}"

      def expert(expert_params, x, mask, e, j=j, encoder=encoder):
        return encoder.apply({"params": expert_params}, x, mask, deterministic=not train,
                             rngs=self._expert_rngs(rng, train, j, e))

      shared_ebld = [split_tasks(expert(params["encoder"][EXPERTS][level][f"expert_{e}"],
                                        x_bld, mask_bl, e), names, sizes)
                     for e in range(self.shared_experts)]
      hidden = split_tasks(x_bld, names, sizes)
      mixed = {}
      for name in names:
        k = self.task_names.index(name)
        own = [expert(params["task_experts"][name][level][f"expert_{e}"], hidden[name],
                      masks[name], self.shared_experts + k * self.task_experts + e)
               for e in range(self.task_experts)]
        outputs_ebld = jnp.stack([out[name] for out in shared_ebld] + own)
        mixed[name] = mix(gate(params["gates"][name][level], hidden[name]), outputs_ebld)
      x_bld = jnp.concatenate([mixed[name] for name in names])
    return split_tasks(x_bld, names, sizes)


class MMoEModel(ExpertsModel):
  """MMoE: shared experts over the upper layers, one gate per task (module doc).

  Args:
    encoder_config: the whole encoder's architecture.
    tasks: the tasks' heads.
    shared_layers: lower layers in the trunk (negative: counted from the top).
    num_experts: the experts, each a copy of the layers above the trunk.
  """

  kind = "mmoe"

  def __init__(self, encoder_config: EncoderConfig, tasks: Sequence[TaskHead],
               shared_layers: int = -1, num_experts: int = 3):
    if num_experts < 1:
      raise ValueError(f"sharing.mmoe.num_experts must be >= 1, got {num_experts}")
    super().__init__(encoder_config, tasks, shared_layers, levels=1,
                     shared_experts=num_experts, task_experts=0)


class CGCModel(ExpertsModel):
  """CGC: shared and per-task experts over the upper layers, one gate per task.

  Args:
    encoder_config: the whole encoder's architecture.
    tasks: the tasks' heads.
    shared_layers: lower layers in the trunk (negative: counted from the top).
    shared_experts: experts every task's gate mixes.
    task_experts: experts of each task's own.
  """

  kind = "cgc"

  def __init__(self, encoder_config: EncoderConfig, tasks: Sequence[TaskHead],
               shared_layers: int = -1, shared_experts: int = 1, task_experts: int = 1):
    super().__init__(encoder_config, tasks, shared_layers, levels=1,
                     shared_experts=shared_experts, task_experts=task_experts)

"""A BERT-compatible Transformer encoder as Flax modules.

Post-LN layers, exact GELU, learned absolute positions, token types: the
architecture of BERT/MiniLM checkpoints, so Hugging Face weights load 1:1
(see `pretrained.py`). Every parameter is created with logical axis names
(`vocab`, `embed`, `heads`, `kv`, `mlp`, ...) so that sharding is a table of
rules (`mtl_jax.sharding`), not code.

The modules are used functionally: `module.init` gives a params pytree,
`module.apply` is pure. Shapes use suffixes: b batch, l length, d hidden,
h heads, k head dim, f feed-forward, c the real tokens' rows when the
encoder runs on them only (`Encoder(capacity=...)`, `compaction.py`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import flax.linen as nn

from mtl_jax.encoders import attention, compaction, dense
from mtl_jax.encoders.config import EncoderConfig
from mtl_jax.encoders.dropout import HashDropout
from mtl_jax.encoders.gelu import gelu
from mtl_jax.encoders.layer_norm import LayerNorm


def _init(config: EncoderConfig, names: tuple[str | None, ...]):
  """Truncated-normal initialiser (BERT's) carrying logical axis names."""
  return nn.with_logical_partitioning(
      nn.initializers.truncated_normal(config.initializer_range), names)


def _zeros(names):
  return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def _ones(names):
  return nn.with_logical_partitioning(nn.initializers.ones_init(), names)


def _dtype(config: EncoderConfig):
  return jnp.dtype(config.dtype)


def make_dropout(config: EncoderConfig, rate: float) -> nn.Module:
  """The encoder's dropout: `HashDropout` (fast masks) or flax's (threefry)."""
  if config.dropout_rng == "hash":
    return HashDropout(rate)
  return nn.Dropout(rate)


def layer_norm(config: EncoderConfig, name: str) -> LayerNorm:
  return LayerNorm(epsilon=config.layer_norm_eps, impl=config.norm_impl, name=name,
                   scale_init=_ones(("embed",)), bias_init=_zeros(("embed",)))


@jax.custom_vjp
def add_to_every_sequence(x_bld: jax.Array, rows_ld: jax.Array) -> jax.Array:
  """`x_bld + rows_ld[None]`, whose gradient for `rows_ld` is a product, not a reduction.

  Autodiff's gradient of the broadcast is a sum over the batch axis, the
  leading one, which XLA's CPU backend ran at about 0.5 GB/s (13 ms for
  [32, 128, 384] against 0.2 ms as the product `ones[b] @ g[b, l d]`;
  BENCHMARKS.md). The same function and gradient otherwise.
  """
  return x_bld + rows_ld[None].astype(x_bld.dtype)


def _add_to_every_sequence_forward(x_bld, rows_ld):
  return add_to_every_sequence(x_bld, rows_ld), rows_ld  # [l, d]: kept for its dtype


def _add_to_every_sequence_backward(rows_ld, g_bld):
  flat = g_bld.reshape(g_bld.shape[0], -1)
  g_ld = jnp.ones((g_bld.shape[0],), flat.dtype) @ flat
  return g_bld, g_ld.reshape(g_bld.shape[1:]).astype(rows_ld.dtype)


add_to_every_sequence.defvjp(_add_to_every_sequence_forward, _add_to_every_sequence_backward)


# Where the word table sits in the encoder's params.
WORD_TABLE = ("embeddings", "word", "embedding")

WordVectorsHook = Callable[[jax.Array, jax.Array], jax.Array]
_WORD_VECTORS_HOOK: contextvars.ContextVar[WordVectorsHook | None] = contextvars.ContextVar(
    "word_vectors_hook", default=None)


@contextlib.contextmanager
def word_vectors_hook(hook: WordVectorsHook) -> Iterator[None]:
  """While tracing within: `Embeddings` passes its word vectors through a hook.

  Args:
    hook: `hook(input_ids_bl, word_vectors_bld) -> word_vectors_bld`, called
      with the ids the lookup read and the rows it returned. Per-task
      gradients use it to see each token's gradient (add a zero probe and
      differentiate by it) without forming a dense [vocab, d] gradient per
      task (`training/gradients.py`).
  """
  token = _WORD_VECTORS_HOOK.set(hook)
  try:
    yield
  finally:
    _WORD_VECTORS_HOOK.reset(token)


class Embeddings(nn.Module):
  """Word + position + token-type embeddings, then LayerNorm and dropout."""

  config: EncoderConfig

  @nn.compact
  def __call__(self, input_ids_bl, token_type_ids_bl, *, deterministic: bool,
               index: compaction.TokenIndex | None = None):
    """[b, l, d]; with `index`, the real tokens' rows only: [c, d]."""
    cfg = self.config
    length = input_ids_bl.shape[1]
    if length + cfg.position_offset > cfg.max_position_embeddings:
      raise ValueError(f"sequence length {length} exceeds max_position_embeddings "
                       f"{cfg.max_position_embeddings}")
    word = nn.Embed(cfg.vocab_size, cfg.hidden_size, name="word",
                    embedding_init=_init(cfg, ("vocab", "embed")))
    position = nn.Embed(cfg.max_position_embeddings, cfg.hidden_size,
                        name="position",
                        embedding_init=_init(cfg, ("position", "embed")))
    token_type = nn.Embed(cfg.type_vocab_size, cfg.hidden_size,
                          name="token_type",
                          embedding_init=_init(cfg, ("token_type", "embed")))
    if index is not None:
      # Each real token's id, segment and position, looked up on its own.
      ids_c = compaction.to_compact(input_ids_bl, index)
      word_cd = word(ids_c)
      if (hook := _WORD_VECTORS_HOOK.get()) is not None:
        word_cd = hook(ids_c, word_cd)
      x_bld = (word_cd + token_type(compaction.to_compact(token_type_ids_bl, index))
               + position(index.position_c % length + cfg.position_offset))
    else:
      word_bld = word(input_ids_bl)
      if (hook := _WORD_VECTORS_HOOK.get()) is not None:
        word_bld = hook(input_ids_bl, word_bld)
      x_bld = add_to_every_sequence(
          word_bld + token_type(token_type_ids_bl),
          position(jnp.arange(length) + cfg.position_offset))
    x_bld = layer_norm(cfg, "layer_norm")(x_bld.astype(_dtype(cfg)))
    return make_dropout(cfg, cfg.hidden_dropout)(x_bld, deterministic=deterministic)


class SelfAttention(nn.Module):
  """Multi-head self-attention with a padding mask.

  Queries, keys and values come from one fused projection (kernel
  [d, 3, h, k]): one large matrix product instead of three smaller ones,
  forward and backward, which XLA's CPU GEMMs run markedly faster. The core
  (scores, softmax, dropout, weighted values) is `attention.dot_product_attention`
  by `config.attention_impl`.
  """

  config: EncoderConfig

  @nn.compact
  def __call__(self, x_bld, mask_bl, *, deterministic: bool,
               index: compaction.TokenIndex | None = None):
    """x [b, l, d], or with `index` the real tokens' rows [c, d]; the output alike."""
    cfg = self.config
    dtype = _dtype(cfg)
    qkv_bl3hk = nn.DenseGeneral(
        (3, cfg.num_heads, cfg.head_dim), dtype=dtype, name="qkv",
        dot_general=dense.dot_general(cfg.matmul_impl, dtype),
        kernel_init=_init(cfg, ("embed", "qkv", "heads", "kv")),
        bias_init=_zeros(("qkv", "heads", "kv")))(x_bld)
    if index is not None:
      qkv_bl3hk = compaction.to_padded(qkv_bl3hk, index, mask_bl.shape)
    rate = 0.0 if deterministic else cfg.attention_dropout
    if rate > 0.0 and cfg.dropout_rng == "threefry":
      context_blhk = attention.attention_xla(
          qkv_bl3hk, mask_bl, None, rate,
          probs_dropout=functools.partial(nn.Dropout(rate), deterministic=False))
    else:
      key = self.make_rng("dropout") if rate > 0.0 else None
      context_blhk = attention.dot_product_attention(qkv_bl3hk, mask_bl, key, rate,
                                                     impl=cfg.attention_impl)
    if index is not None:
      context_blhk = compaction.to_compact(context_blhk, index)
    return nn.DenseGeneral(
        cfg.hidden_size, axis=(-2, -1), dtype=dtype, name="output",
        dot_general=dense.dot_general(cfg.matmul_impl, dtype),
        kernel_init=_init(cfg, ("heads", "kv", "embed")),
        bias_init=_zeros(("embed",)))(context_blhk)


# `adapter(layer_name, site, x_bld) -> x_bld`: maps the output of a layer's
# attention block (site "attention") or feed-forward block (site "output"),
# after dropout and before the residual sum, e.g. to add bottleneck adapters
# (`mtl_jax.sharing.adapters`), whose params live outside the encoder's.
AdapterHook = Callable[[str, str, jax.Array], jax.Array]


class Layer(nn.Module):
  """One post-LN Transformer layer: attention and feed-forward blocks."""

  config: EncoderConfig
  adapter: AdapterHook | None = None

  def _adapt(self, site: str, x_bld):
    return x_bld if self.adapter is None else self.adapter(self.name, site, x_bld)

  @nn.compact
  def __call__(self, x_bld, mask_bl, *, deterministic: bool,
               index: compaction.TokenIndex | None = None):
    """x [b, l, d], or with `index` the real tokens' rows [c, d]; the output alike."""
    cfg = self.config
    dtype = _dtype(cfg)
    dropout = make_dropout(cfg, cfg.hidden_dropout)
    attended = SelfAttention(cfg, name="attention")(x_bld, mask_bl,
                                                    deterministic=deterministic, index=index)
    attended = self._adapt("attention", dropout(attended, deterministic=deterministic))
    x_bld = layer_norm(cfg, "attention_norm")(x_bld + attended)
    products = dense.dot_general(cfg.matmul_impl, dtype)
    h_blf = nn.Dense(cfg.intermediate_size, dtype=dtype, name="intermediate",
                     dot_general=products,
                     kernel_init=_init(cfg, ("embed", "mlp")),
                     bias_init=_zeros(("mlp",)))(x_bld)
    h_blf = gelu(h_blf)
    out_bld = nn.Dense(cfg.hidden_size, dtype=dtype, name="output", dot_general=products,
                       kernel_init=_init(cfg, ("mlp", "embed")),
                       bias_init=_zeros(("embed",)))(h_blf)
    out_bld = self._adapt("output", dropout(out_bld, deterministic=deterministic))
    return layer_norm(cfg, "output_norm")(x_bld + out_bld)


class Encoder(nn.Module):
  """Embeddings followed by `num_layers` Transformer layers.

  `layers` selects which of the layers this module holds, so a stack can be
  split (e.g. lower layers shared, upper layers per task) while keeping the
  parameter names `layer_{i}` of the full encoder; `embeddings=False` leaves
  the embeddings out (the input is then hidden states, not ids).
  `adapter` is passed to every layer (see `AdapterHook`).
  """

  config: EncoderConfig
  layers: tuple[int, ...] | None = None
  embeddings: bool = True
  adapter: AdapterHook | None = None

  @nn.compact
  def __call__(self, inputs, attention_mask_bl, token_type_ids_bl=None, *,
               deterministic: bool = True, capacity: int | None = None):
    """Encodes a batch.

    Args:
      inputs: int token ids [b, l] (with embeddings) or hidden states [b, l, d].
      attention_mask_bl: 1 for real tokens, 0 for padding.
      token_type_ids_bl: segment ids [b, l]; zeros where None.
      deterministic: False enables dropout (needs a 'dropout' rng).
      capacity: None, or run everything but the attention core on the real
        tokens only, in a buffer of this many rows (at least the real
        tokens; `compaction`). The same function (dropout draws its masks
        over the buffer's shape instead); zeros at padding in the output.

    Returns:
      Hidden states [b, l, d] in the compute dtype.
    """
    cfg = self.config
    mask_bl = attention_mask_bl.astype(bool)
    index = None if capacity is None else compaction.token_index(mask_bl, capacity)
    # x: [b, l, d], or the real tokens' rows [c, d] when compacting.
    if self.embeddings:
      if token_type_ids_bl is None:
        token_type_ids_bl = jnp.zeros_like(inputs)
      x = Embeddings(cfg, name="embeddings")(
          inputs, token_type_ids_bl, deterministic=deterministic, index=index)
    else:
      x = inputs.astype(_dtype(cfg))
      if index is not None:
        x = compaction.to_compact(x, index)
    layers = range(cfg.num_layers) if self.layers is None else self.layers
    for i in layers:
      x = Layer(cfg, adapter=self.adapter, name=f"layer_{i}")(
          x, mask_bl, deterministic=deterministic, index=index)
    return x if index is None else compaction.to_padded(x, index, mask_bl.shape)


def logical_axes(config: EncoderConfig):
  """The whole encoder's params pytree with a `PartitionSpec` of logical axis names
  per leaf (e.g. to lay out a pretrained checkpoint before a sharing
  architecture splits it into shared and per-task parts)."""
  ids = jax.ShapeDtypeStruct((1, 1), jnp.int32)
  abstract = jax.eval_shape(Encoder(config).init, jax.random.key(0), ids, ids, ids)
  return nn.get_partition_spec(abstract)["params"]


def mean_pool(hidden_bld, attention_mask_bl):
  """Average of the hidden states of real (unmasked) tokens."""
  mask_bl1 = attention_mask_bl[..., None].astype(hidden_bld.dtype)
  total_bd = jnp.sum(hidden_bld * mask_bl1, axis=1)
  count_b1 = jnp.maximum(jnp.sum(mask_bl1, axis=1), 1.0)
  return total_bd / count_b1

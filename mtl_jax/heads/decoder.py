"""Task-specific Transformer decoders over the shared encoder's output.

A small decoder per task that cross-attends the encoder output, in two uses:

* `Seq2SeqHead`: text-to-text tasks. Training uses teacher forcing
  (`decoder_input_ids` = [BOS] + target[:-1], logits at every position);
  prediction decodes greedily for a fixed number of steps (the target
  length of the batch) in one `lax` loop, jitted once.
* `DecoderClassificationHead`: a richer head for classification: a few
  learned queries attend over the encoder output (and each other) through
  the decoder layers, and their mean gives the logits.

Layers are pre-LayerNorm (stable when trained from scratch next to a
pretrained encoder), positions are sinusoidal (no parameters, any target
length), and the seq2seq output layer is tied to the decoder's own token
embedding. Parameters carry logical axis names, as the encoder's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np

from mtl_jax.heads.classification import KERNEL_INIT, dense


def _zeros(names):
  return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def _layer_norm(name: str) -> nn.LayerNorm:
  return nn.LayerNorm(name=name, scale_init=nn.with_logical_partitioning(
      nn.initializers.ones_init(), ("embed",)), bias_init=_zeros(("embed",)))


def _default_heads(width: int) -> int:
  """64-wide heads as in BERT, at least one, dividing the width."""
  heads = max(1, width // 64)
  while width % heads:
    heads -= 1
  return heads


def sinusoidal_positions(length: int, width: int) -> np.ndarray:
  """[length, width] the Transformer's fixed sine/cosine position encodings."""
  positions = np.arange(length)[:, None]
  rates = np.exp(-np.log(10000.0) * (np.arange(0, width, 2) / width))[None, :]
  table = np.zeros((length, width), np.float32)
  table[:, 0::2] = np.sin(positions * rates)
  table[:, 1::2] = np.cos(positions * rates)[:, :width // 2]
  return table


class DecoderLayer(nn.Module):
  """Pre-LN: self-attention (causal or not), cross-attention to the encoder, MLP.

  Attributes:
    num_heads: attention heads (0: 64-wide heads).
    mlp_dim: hidden width of the MLP (0: 4 x the model width).
    dropout: dropout rate on attention weights and residual branches.
    causal: whether position t sees only positions <= t (token decoding).
  """

  num_heads: int = 0
  mlp_dim: int = 0
  dropout: float = 0.1
  causal: bool = True

  @nn.compact
  def __call__(self, x_btd, memory_bld, memory_mask_bl, *, deterministic: bool):
    width = x_btd.shape[-1]
    heads = self.num_heads or _default_heads(width)
    drop = nn.Dropout(self.dropout)

    def attention(name):
      return nn.MultiHeadDotProductAttention(
          num_heads=heads, dropout_rate=self.dropout, name=name,
          kernel_init=nn.with_logical_partitioning(KERNEL_INIT, ("embed", "heads", "kv")),
          out_kernel_init=nn.with_logical_partitioning(KERNEL_INIT, ("heads", "kv", "embed")),
          bias_init=_zeros(("heads", "kv")), out_bias_init=_zeros(("embed",)))

    query_bt = jnp.ones(x_btd.shape[:2], bool)
    self_mask = nn.make_causal_mask(query_bt) if self.causal else None
    h_btd = _layer_norm("self_attention_norm")(x_btd)
    h_btd = attention("self_attention")(h_btd, mask=self_mask, deterministic=deterministic)
    x_btd = x_btd + drop(h_btd, deterministic=deterministic)

    cross_mask = nn.make_attention_mask(query_bt, memory_mask_bl.astype(bool))
    h_btd = _layer_norm("cross_attention_norm")(x_btd)
    h_btd = attention("cross_attention")(h_btd, memory_bld, mask=cross_mask,
                                         deterministic=deterministic)
    x_btd = x_btd + drop(h_btd, deterministic=deterministic)

    h_btd = _layer_norm("mlp_norm")(x_btd)
    h_btf = jax.nn.gelu(nn.Dense(self.mlp_dim or 4 * width, name="intermediate",
                                 kernel_init=nn.with_logical_partitioning(
                                     KERNEL_INIT, ("embed", "mlp")),
                                 bias_init=_zeros(("mlp",)))(h_btd))
    h_btd = nn.Dense(width, name="output",
                     kernel_init=nn.with_logical_partitioning(KERNEL_INIT, ("mlp", "embed")),
                     bias_init=_zeros(("embed",)))(h_btf)
    return x_btd + drop(h_btd, deterministic=deterministic)


class TokenDecoder(nn.Module):
  """Token embedding + positions -> decoder layers -> tied logits over the vocabulary.

  Attributes:
    vocab_size: output (and input) vocabulary size.
    num_layers, num_heads, mlp_dim, dropout: see `DecoderLayer`.
  """

  vocab_size: int
  num_layers: int = 2
  num_heads: int = 0
  mlp_dim: int = 0
  dropout: float = 0.1

  @nn.compact
  def __call__(self, ids_bt, memory_bld, memory_mask_bl, *, deterministic: bool,
               position: jax.Array | None = None):
    """Logits [b, t, vocab], or [b, vocab] at `position` only (greedy decoding)."""
    width = memory_bld.shape[-1]
    embed = nn.Embed(self.vocab_size, width, name="embed", embedding_init=(
        nn.with_logical_partitioning(KERNEL_INIT, ("vocab", "embed"))))
    length = ids_bt.shape[1]
    x_btd = embed(ids_bt) * np.sqrt(width) + sinusoidal_positions(length, width)[None]
    x_btd = nn.Dropout(self.dropout)(x_btd, deterministic=deterministic)
    for i in range(self.num_layers):
      x_btd = DecoderLayer(self.num_heads, self.mlp_dim, self.dropout, causal=True,
                           name=f"layer_{i}")(x_btd, memory_bld, memory_mask_bl,
                                              deterministic=deterministic)
    if position is not None:
      # Only the position being decoded: the vocabulary projection is the
      # costly part, so greedy decoding does it for one position per step.
      x_btd = jax.lax.dynamic_slice_in_dim(x_btd, position, 1, axis=1)
    logits_btv = embed.attend(_layer_norm("final_norm")(x_btd))
    return logits_btv[:, 0] if position is not None else logits_btv


class Seq2SeqHead(nn.Module):
  """A token decoder per task: teacher-forced logits, and greedy decoding when not training.

  Attributes:
    decoder: the `TokenDecoder` (its parameters live under "decoder").
  """

  decoder: TokenDecoder

  @nn.compact
  def __call__(self, hidden_bld, attention_mask_bl, *, deterministic: bool,
               decoder_input_ids: jax.Array | None = None):
    """Decodes over the encoder output.

    Args:
      hidden_bld: the encoder output.
      attention_mask_bl: 1 for real source tokens.
      deterministic: False in training (dropout on; no greedy decoding).
      decoder_input_ids: [b, t] [BOS] + target[:-1] (teacher forcing); its
        length is the decoding length and its first column the BOS token.
        None (at init): one BOS-free step.

    Returns:
      {"logits": [b, t, vocab]} in training; with deterministic=True also
      "tokens": [b, t] int32, the greedy decode. Under jit an output nobody
      reads is dead code and is dropped: an eval-mode loss never decodes.
    """
    if decoder_input_ids is None:
      decoder_input_ids = jnp.zeros((hidden_bld.shape[0], 1), jnp.int32)
    memory_bld = hidden_bld.astype(jnp.float32)
    logits_btv = self.decoder(decoder_input_ids, memory_bld, attention_mask_bl,
                              deterministic=deterministic)
    if not deterministic:
      return {"logits": logits_btv}
    return {"logits": logits_btv, "tokens": self._greedy(
        self.decoder, decoder_input_ids, memory_bld, attention_mask_bl)}

  def _greedy(self, decoder: TokenDecoder, decoder_input_ids_bt, memory_bld,
              memory_mask_bl):
    """[b, t] greedy tokens: step s feeds the tokens chosen at steps < s."""
    length = decoder_input_ids_bt.shape[1]
    inputs_bt = jnp.zeros_like(decoder_input_ids_bt).at[:, 0].set(decoder_input_ids_bt[:, 0])

    def body(mdl, carry):
      step, inputs_bt, tokens_bt = carry
      logits_bv = mdl(inputs_bt, memory_bld, memory_mask_bl, deterministic=True,
                      position=step)
      next_b = jnp.argmax(logits_bv, axis=-1).astype(inputs_bt.dtype)
      tokens_bt = tokens_bt.at[:, step].set(next_b)
      # The chosen token is the next step's input (past the end: dropped).
      inputs_bt = inputs_bt.at[:, step + 1].set(next_b, mode="drop")
      return step + 1, inputs_bt, tokens_bt

    _, _, tokens_bt = nn.while_loop(lambda mdl, carry: carry[0] < length, body, decoder,
                                    (jnp.zeros((), jnp.int32), inputs_bt,
                                     jnp.zeros_like(inputs_bt)))
    return tokens_bt


class DecoderClassificationHead(nn.Module):
  """Learned queries -> decoder layers over the encoder output -> mean -> logits.

  Attributes:
    num_outputs: number of classes.
    num_layers: decoder layers.
    num_queries: learned query vectors (they attend to each other too).
    num_heads, mlp_dim, dropout: see `DecoderLayer`.
  """

  num_outputs: int
  num_layers: int = 1
  num_queries: int = 1
  num_heads: int = 0
  mlp_dim: int = 0
  dropout: float = 0.1

  @nn.compact
  def __call__(self, hidden_bld, attention_mask_bl, *, deterministic: bool):
    memory_bld = hidden_bld.astype(jnp.float32)
    batch, width = memory_bld.shape[0], memory_bld.shape[-1]
    queries_qd = self.param("queries", nn.with_logical_partitioning(KERNEL_INIT, (None, "embed")),
                            (self.num_queries, width))
    x_bqd = jnp.broadcast_to(queries_qd[None], (batch, self.num_queries, width))
    for i in range(self.num_layers):
      x_bqd = DecoderLayer(self.num_heads, self.mlp_dim, self.dropout, causal=False,
                           name=f"layer_{i}")(x_bqd, memory_bld, attention_mask_bl,
                                              deterministic=deterministic)
    x_bd = jnp.mean(_layer_norm("final_norm")(x_bqd), axis=1)
    x_bd = nn.Dropout(self.dropout)(x_bd, deterministic=deterministic)
    return dense(self.num_outputs, ("embed", "labels"), "output")(x_bd)


def decoder_options(options, module: type[nn.Module], where: str = "head") -> dict:
  """A decoder head's options (`type` dropped), checked against the module's attributes.

  Raises:
    ValueError: an option the decoder does not have (named, with the known ones).
  """
  known = {"num_layers", "num_queries", "num_heads", "mlp_dim", "dropout"} & set(
      module.__dataclass_fields__)
  given = {k: v for k, v in dict(options).items() if k != "type"}
  unknown = sorted(set(given) - known)
  if unknown:
    raise ValueError(f"{where}: unknown decoder option(s) {unknown}; known: {sorted(known)}")
  return given

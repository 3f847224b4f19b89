"""The hand-written GELU: the exact GELU's values and gradients, with less kept for the backward."""

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.encoders import Encoder, EncoderConfig, bert
from mtl_jax.encoders.gelu import gelu


def test_gelu_is_the_exact_gelu():
  x = jnp.linspace(-8.0, 8.0, 101)
  np.testing.assert_allclose(gelu(x), jax.nn.gelu(x, approximate=False), atol=1e-6)
  np.testing.assert_allclose(jax.vmap(jax.grad(gelu))(x),
                             jax.vmap(jax.grad(lambda v: jax.nn.gelu(v, approximate=False)))(x),
                             atol=1e-6)


def test_the_gradient_makes_fewer_passes_than_autodiff(monkeypatch):
  # Autodiff of 0.5 x (1 + erf(x / sqrt 2)) makes XLA write the erf term in a pass of
  # its own and read it in the backward (also when the backward recomputes it: CSE
  # merges the two). The hand-written backward saves four [tokens, intermediate]
  # arrays of memory traffic per layer (XLA's own count of bytes accessed).
  layers, tokens, intermediate = 2, 8 * 64, 256
  config = EncoderConfig(vocab_size=50, hidden_size=64, num_layers=layers, num_heads=2,
                         intermediate_size=intermediate, max_position_embeddings=64,
                         attention_impl="xla", hidden_dropout=0.0, attention_dropout=0.0)
  ids = jnp.ones((8, 64), jnp.int32)
  mask = jnp.ones((8, 64), bool)
  params = Encoder(config).init(jax.random.PRNGKey(0), ids, mask)

  def bytes_accessed(activation):
    monkeypatch.setattr(bert, "gelu", activation)
    loss = lambda p: jnp.sum(jnp.sin(Encoder(config).apply(p, ids, mask)))
    return jax.jit(jax.grad(loss)).lower(params).compile().cost_analysis()["bytes accessed"]

  autodiff = bytes_accessed(lambda x: 0.5 * x * (1.0 + jax.lax.erf(x * 2.0 ** -0.5)))
  assert autodiff - bytes_accessed(gelu) >= layers * 4 * tokens * intermediate * 4

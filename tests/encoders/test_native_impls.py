"""Each native CPU implementation computes the encoder's function: loss and gradients as XLA's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.encoders import Encoder, EncoderConfig
from mtl_jax.kernels import blas, native_kernels_available


@pytest.mark.parametrize("option, native, atol", [
    ("attention_impl", "cpu_kernel", 1e-6),
    ("matmul_impl", "blas", 1e-6),
    # Its parameter gradients are sums over all rows, in another order than XLA's.
    ("norm_impl", "cpu_kernel", 5e-5),
])
def test_the_encoder_computes_the_same_function_under_a_native_impl(option, native, atol):
  if not native_kernels_available() or (option == "matmul_impl" and blas.blas_provider() is None):
    pytest.skip("the native CPU kernels did not build here (test_build.py fails on CI for it)")
  shape = dict(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
               hidden_dropout=0.1, attention_dropout=0.1)
  ids = jax.random.randint(jax.random.key(0), (3, 9), 1, 50)
  mask = jnp.ones((3, 9), bool).at[1, 6:].set(False).at[2, 2:].set(False)
  models = {impl: Encoder(EncoderConfig(**shape, **{option: impl})) for impl in (native, "xla")}
  params = models["xla"].init(jax.random.key(1), ids, mask, deterministic=True)

  def loss(impl, params):
    # Training mode: dropout masks from the same key on both paths.
    out = models[impl].apply(params, ids, mask, deterministic=False,
                             rngs={"dropout": jax.random.key(2)})
    return jnp.sum(out * jnp.cos(out))

  results = {impl: jax.jit(jax.value_and_grad(loss, argnums=1), static_argnums=0)(impl, params)
             for impl in models}
  np.testing.assert_allclose(results[native][0], results["xla"][0], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol),
               results[native][1], results["xla"][1])

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtl_jax import heads
from mtl_jax.tasks.kinds import Classification
from mtl_jax.constants import IGNORE_LABEL
from mtl_jax.promotion import standard_promotion

VOCAB, WIDTH = 12, 16


def _memory(seed=0, b=3, length=6):
  hidden = jax.random.normal(jax.random.PRNGKey(seed), (b, length, WIDTH))
  mask = (np.arange(length)[None] < np.array([[4], [6], [2]])[:b]).astype(np.int32)
  return hidden, jnp.asarray(mask)


def _seq2seq(num_layers=1):
  head = heads.Seq2SeqHead(heads.TokenDecoder(VOCAB, num_layers=num_layers, dropout=0.0))
  hidden, mask = _memory()
  params = head.init(jax.random.PRNGKey(1), hidden, mask, deterministic=True)
  return head, params, hidden, mask


def test_greedy_decode_is_the_argmax_of_teacher_forcing_on_its_own_output():
  head, params, hidden, mask = _seq2seq(num_layers=2)
  bos = jnp.full((3, 5), 1, jnp.int32)  # only column 0 (BOS) is read
  tokens = head.apply(params, hidden, mask, deterministic=True,
                      decoder_input_ids=bos)["tokens"]
  forced_inputs = jnp.concatenate([bos[:, :1], tokens[:, :-1]], axis=1)
  logits = head.apply(params, hidden, mask, deterministic=True,
                      decoder_input_ids=forced_inputs)["logits"]
  np.testing.assert_array_equal(jnp.argmax(logits, -1), tokens)
  assert tokens.shape == (3, 5) and tokens.dtype == jnp.int32


def test_decoder_is_causal_and_ignores_padded_memory():
  head, params, hidden, mask = _seq2seq()
  ids = jnp.array([[1, 4, 5, 6], [1, 7, 8, 9], [1, 2, 3, 3]])
  logits = head.apply(params, hidden, mask, deterministic=True,
                      decoder_input_ids=ids)["logits"]
  later = head.apply(params, hidden, mask, deterministic=True,
                     decoder_input_ids=ids.at[:, 2:].set(11))["logits"]
  np.testing.assert_allclose(later[:, :2], logits[:, :2], atol=1e-5)
  assert not np.allclose(later[:, 2:], logits[:, 2:])
  padded = hidden.at[0, 4:].set(50.0).at[2, 2:].set(-50.0)
  np.testing.assert_allclose(
      head.apply(params, padded, mask, deterministic=True, decoder_input_ids=ids)["logits"],
      logits, atol=1e-5)


def test_training_mode_returns_only_logits():
  head, params, hidden, mask = _seq2seq()
  out = head.apply(params, hidden, mask, deterministic=False,
                   decoder_input_ids=jnp.ones((3, 4), jnp.int32),
                   rngs={"dropout": jax.random.PRNGKey(0)})
  assert set(out) == {"logits"} and out["logits"].shape == (3, 4, VOCAB)


def test_toy_copy_task_learns_with_teacher_forcing_and_decodes_greedily():
  # The "encoder output" is a fixed embedding of the source tokens plus their
  # positions; the decoder must learn to copy them: [BOS] x1 x2 x3 -> x1 x2 x3 EOS.
  bos, eos, length, batch = 1, 2, 4, 32
  table = jax.random.normal(jax.random.PRNGKey(0), (VOCAB, WIDTH))
  positions = jnp.asarray(heads.decoder.sinusoidal_positions(length, WIDTH))

  def data(key):
    words = jax.random.randint(key, (batch, length - 1), 3, VOCAB)
    memory = table[words] + positions[None, :length - 1]
    targets = jnp.concatenate([words, jnp.full((batch, 1), eos)], axis=1)
    inputs = jnp.concatenate([jnp.full((batch, 1), bos), words], axis=1)
    return memory, targets, inputs

  head = heads.Seq2SeqHead(heads.TokenDecoder(VOCAB, num_layers=1, dropout=0.0))
  memory, targets, inputs = data(jax.random.PRNGKey(1))
  mask = jnp.ones(memory.shape[:2], jnp.int32)
  params = head.init(jax.random.PRNGKey(2), memory, mask, deterministic=True)
  optimizer = standard_promotion(optax.adam(1e-2))
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, key):
    memory, targets, inputs = data(key)

    def loss_fn(p):
      out = head.apply(p, memory, mask, deterministic=False, decoder_input_ids=inputs)
      return heads.tagging_loss(out["logits"], targets)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  first = None
  for i in range(600):
    params, opt_state, loss = step(params, opt_state, jax.random.PRNGKey(100 + i))
    first = loss if first is None else first
  memory, targets, inputs = data(jax.random.PRNGKey(7))
  tokens = head.apply(params, memory, mask, deterministic=True,
                      decoder_input_ids=inputs)["tokens"]
  exact = float(jnp.mean(jnp.all(tokens == targets, axis=1)))
  assert float(loss) < 0.1 * float(first)
  assert exact > 0.9


def test_decoder_classification_head_shapes_and_padding():
  head = heads.DecoderClassificationHead(num_outputs=3, num_layers=1, num_queries=2)
  hidden, mask = _memory()
  params = head.init(jax.random.PRNGKey(1), hidden, mask, deterministic=True)
  out = head.apply(params, hidden, mask, deterministic=True)
  assert out.shape == (3, 3)
  assert params["params"]["queries"].value.shape == (2, WIDTH)
  np.testing.assert_allclose(head.apply(params, hidden.at[0, 4:].set(9.0), mask,
                                        deterministic=True), out, atol=1e-5)


def test_classification_kind_builds_the_decoder_head_from_options():
  build = heads.output_of(Classification()).build
  head = build(Classification(), 3, {"type": "decoder", "num_queries": 4, "dropout": 0.0})
  assert isinstance(head, heads.DecoderClassificationHead)
  assert (head.num_outputs, head.num_queries, head.dropout) == (3, 4, 0.0)
  assert isinstance(build(Classification(), 3, {}), heads.SequenceClassificationHead)


def test_unknown_decoder_option_is_named():
  with pytest.raises(ValueError, match=r"unknown decoder option\(s\) \['layers'\]"):
    heads.decoder_options({"type": "decoder", "layers": 2}, heads.DecoderClassificationHead)
  assert heads.decoder_options({"type": "decoder", "num_queries": 4},
                               heads.DecoderClassificationHead) == {"num_queries": 4}
  with pytest.raises(ValueError, match="num_queries"):
    heads.decoder_options({"num_queries": 4}, heads.TokenDecoder)


def test_sequence_loss_known_answer():
  logits = jnp.zeros((1, 3, VOCAB))
  labels = jnp.array([[5, 2, IGNORE_LABEL]])
  assert float(heads.tagging_loss(logits, labels)) == pytest.approx(np.log(VOCAB))

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import relatedness
from mtl_jax.promotion import standard_promotion

NAMES = ("a", "b", "c")


def _features(seed=0, k=3, d=4):
  return np.random.default_rng(seed).normal(size=(k, d)).astype(np.float32)


def test_penalty_matches_the_formula_over_present_pairs():
  f = _features()
  r = np.array([[5.0, 1.0, 2.0], [0.5, 0.0, 3.0], [1.5, 0.25, 7.0]], np.float32)
  present = np.array([1.0, 1.0, 1.0], np.float32)
  expected = sum(r[i, j] * np.sum((f[i] - f[j]) ** 2) for i in range(3) for j in range(3))
  got = relatedness.relatedness_penalty(jnp.asarray(f), jnp.asarray(r), jnp.asarray(present))
  assert float(got) == pytest.approx(expected, rel=1e-5)
  # Task b absent: only the pairs of a and c count.
  present = np.array([1.0, 0.0, 1.0], np.float32)
  expected = (r[0, 2] + r[2, 0]) * np.sum((f[0] - f[2]) ** 2)
  got = relatedness.relatedness_penalty(jnp.asarray(f), jnp.asarray(r), jnp.asarray(present))
  assert float(got) == pytest.approx(expected, rel=1e-5)


def test_learned_relatedness_is_the_row_softmax_of_relative_distances():
  f = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]], np.float32)
  d = np.array([[np.sum((x - y) ** 2) for y in f] for x in f])
  mean = d[~np.eye(3, dtype=bool)].mean()
  got = np.asarray(relatedness.learned_relatedness(jnp.asarray(d), jnp.ones(3), 0.5))
  for i in range(3):
    others = [j for j in range(3) if j != i]
    logits = -d[i, others] / (0.5 * mean)
    np.testing.assert_allclose(got[i, others], np.exp(logits) / np.exp(logits).sum(),
                               rtol=1e-5)
    assert got[i, i] == 0
  assert got[0, 1] > got[0, 2]  # task a is nearer b than c
  # An absent task has a zero row and column; a row with no partner stays finite.
  got = np.asarray(relatedness.learned_relatedness(jnp.asarray(d), jnp.array([1., 0, 1])))
  assert (got[1] == 0).all() and (got[:, 1] == 0).all()
  np.testing.assert_allclose(got[0, 2], 1.0)
  alone = relatedness.learned_relatedness(jnp.asarray(d), jnp.array([1., 0, 0]))
  assert np.isfinite(alone).all() and float(jnp.sum(alone)) == 0


def test_task_features_average_real_tokens_of_real_examples():
  hidden = np.random.default_rng(1).normal(size=(2, 3, 4)).astype(np.float32)
  mask = np.array([[1, 1, 0], [0, 0, 0]], np.int32)  # second row is padding
  f = relatedness.task_features({"a": hidden}, {"a": {"attention_mask": mask}}, ("a",))
  np.testing.assert_allclose(f[0], hidden[0, :2].mean(axis=0), rtol=1e-6)


def test_regularizer_from_config_prior_learned_and_off():
  config = {"weight": 0.0, "prior": (), "temperature": 1.0}
  assert relatedness.make_regularizer(config, NAMES) is None
  prior = [[0, 1, 0], [1, 0, 2], [0, 2, 0]]
  reg = relatedness.make_regularizer({**config, "weight": 0.5, "prior": prior}, NAMES)
  hidden = {n: jnp.asarray(np.random.default_rng(i).normal(size=(2, 3, 4)), jnp.float32)
            for i, n in enumerate(NAMES)}
  batch = {n: {"attention_mask": jnp.ones((2, 3), jnp.int32)} for n in NAMES}
  present = jnp.ones(3)
  f = relatedness.task_features(hidden, batch, NAMES)
  expected = 0.5 * relatedness.relatedness_penalty(f, jnp.asarray(prior, jnp.float32), present)
  assert float(reg(hidden, batch, present)) == pytest.approx(float(expected), rel=1e-6)
  learned = relatedness.make_regularizer({**config, "weight": 1.0}, NAMES)
  np.testing.assert_allclose(jnp.sum(learned.relatedness(hidden, batch, present), 1), 1.0,
                             rtol=1e-6)
  # The gradient reaches the features (R itself is held fixed).
  grads = jax.grad(lambda h: learned(h, batch, present))(hidden)
  assert all(float(jnp.abs(g).sum()) > 0 for g in grads.values())


@pytest.mark.parametrize("prior, message", [
    ([[0, 1], [1, 0]], "must be a 3 x 3 matrix"),
    ([[0, -1, 0], [1, 0, 0], [0, 0, 0]], "non-negative"),
    ("abc", "must be a 3 x 3 matrix"),
])
def test_bad_prior_is_a_clear_error(prior, message):
  with pytest.raises(ValueError, match=message):
    relatedness.make_regularizer({"weight": 1.0, "prior": prior, "temperature": 1.0}, NAMES)


def test_probed_balancing_step_adds_the_regularizer_gradient(two_task_batch):
  """A step that probes per-task gradients (diagnostics on) equals the plain one."""
  import optax

  from mtl_jax import weighting
  from mtl_jax.encoders import EncoderConfig
  from mtl_jax.sharing import HardSharingModel, TaskHead
  from mtl_jax.tasks.kinds import Classification, Tagging
  from mtl_jax.training import TrainState, make_train_step

  config = EncoderConfig(vocab_size=30, hidden_size=16, num_layers=1, num_heads=2,
                         intermediate_size=32, max_position_embeddings=16,
                         hidden_dropout=0.0, attention_dropout=0.0)
  kinds = {"news": Classification(), "ner": Tagging()}
  model = HardSharingModel(config, [TaskHead("news", kinds["news"], 3, {"dropout": 0.0}),
                                    TaskHead("ner", kinds["ner"], 4, {"dropout": 0.0})])
  optimizer, balance = standard_promotion(optax.sgd(0.1)), weighting.from_spec("equal")
  state = TrainState.create(model.init(jax.random.PRNGKey(0)), optimizer, balance.init(2),
                            jax.random.PRNGKey(1))
  regularizer = relatedness.make_regularizer(
      {"weight": 1.0, "prior": [[0, 1], [1, 0]], "temperature": 1.0}, model.task_names)
  batch, rng = two_task_batch(), jax.random.PRNGKey(2)
  results = [jax.jit(make_train_step(model, balance, optimizer, regularizer=regularizer,
                                     gradient_mode="full", diagnostics=diagnostics))(
                                         state, batch, rng)
             for diagnostics in (False, True)]
  (plain, plain_metrics), (probed, probed_metrics) = results
  assert float(plain_metrics["regularizer"]) > 0
  np.testing.assert_allclose(probed_metrics["regularizer"], plain_metrics["regularizer"],
                             rtol=1e-5)
  np.testing.assert_allclose(probed_metrics["loss"], plain_metrics["loss"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               probed.params, plain.params)
  # The regulariser moves the encoder (and only the encoder).
  without, _ = jax.jit(make_train_step(model, balance, optimizer))(state, batch, rng)
  word = lambda s: s.params["encoder"]["embeddings"]["word"]["embedding"]
  assert not np.allclose(word(without), word(plain), atol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, without.params["heads"], plain.params["heads"])

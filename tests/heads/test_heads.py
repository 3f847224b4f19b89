import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import heads
from mtl_jax.constants import IGNORE_LABEL


def test_head_kernels_are_initialised_as_transformers_does():
  """A normal of std 0.02, not truncated: the reference's heads (RESULTS.md, single-task gap)."""
  head = heads.TokenClassificationHead(num_labels=512)
  params = head.init(jax.random.PRNGKey(0), jnp.zeros((1, 1, 384)), None, deterministic=True)
  kernel = np.asarray(params["params"]["output"]["kernel"].value)  # 196,608 draws
  assert abs(kernel.std() / 0.02 - 1) < 0.01  # truncated at 2 std it would be 0.0176
  assert abs(kernel.mean()) < 1e-4
  assert np.mean(np.abs(kernel) > 0.04) > 0.04  # a normal has 4.6% beyond 2 std
  np.testing.assert_array_equal(params["params"]["output"]["bias"].value, 0.0)


def test_classification_loss_ignores_padding_rows():
  logits = jnp.array([[2.0, 0.0], [0.0, 0.0], [9.0, -9.0]])
  labels = jnp.array([0, 1, 1])
  loss = heads.classification_loss(logits, labels, jnp.array([1, 1, 0]))
  expected = (np.log1p(np.exp(-2.0)) + np.log(2.0)) / 2
  assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_tagging_loss_counts_only_labelled_tokens():
  logits = jnp.zeros((1, 4, 3))
  labels = jnp.array([[IGNORE_LABEL, 2, IGNORE_LABEL, 0]])
  assert float(heads.tagging_loss(logits, labels)) == pytest.approx(np.log(3.0))
  assert float(heads.tagging_loss(logits, jnp.full((1, 4), IGNORE_LABEL))) == 0.0


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_sequence_head_pooling(pooling):
  head = heads.SequenceClassificationHead(num_outputs=3, pooling=pooling)
  hidden = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 8))
  mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
  params = head.init(jax.random.PRNGKey(1), hidden, mask, deterministic=True)
  out = head.apply(params, hidden, mask, deterministic=True)
  assert out.shape == (2, 3)
  # Changing padded positions changes nothing.
  changed = hidden.at[0, 3:].set(100.0)
  np.testing.assert_allclose(head.apply(params, changed, mask, deterministic=True), out,
                             atol=1e-5)


def test_unknown_pooling():
  with pytest.raises(ValueError, match="unknown pooling"):
    heads.pool(jnp.zeros((1, 2, 3)), jnp.ones((1, 2)), "max")


def test_regression_loss_is_mse_over_real_rows():
  loss = heads.regression_loss(jnp.array([1.0, 3.0, 100.0]), jnp.array([2.0, 1.0, 0.0]),
                               jnp.array([1, 1, 0]))
  assert float(loss) == pytest.approx((1.0 + 4.0) / 2)


def test_multilabel_loss_known_answer():
  logits = jnp.array([[0.0, 2.0], [5.0, 5.0]])
  labels = jnp.array([[1, 0], [1, 1]])
  loss = heads.multilabel_loss(logits, labels, jnp.array([1, 0]))
  expected = (np.log(2.0) + np.log1p(np.exp(2.0))) / 2  # row 0 only, mean over labels
  assert float(loss) == pytest.approx(expected, rel=1e-6)

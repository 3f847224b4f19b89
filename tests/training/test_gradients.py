"""Per-task gradients in every gradient mode against a one-backward-per-task reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import sharing
from mtl_jax.sharing import HardSharingModel
from mtl_jax.training import gradients, task_losses
from mtl_jax.weighting import linalg

from helpers import (NO_DROPOUT as TINY, assert_trees_close, per_task_gradients, task_heads,
                     two_task_batch as batch)


class MixingModel(HardSharingModel):
  """The same model declared non-separable: exercises the generic paths."""

  separable_tasks = False


COEFFS = jnp.array([0.7, -1.3])
WEIGHTS = jnp.array([2.0, 0.5])


@pytest.mark.parametrize("model_class", [HardSharingModel, MixingModel])
@pytest.mark.parametrize("mode", ["full", "last_layer", "representation"])
def test_combined_gradients_are_exact_in_every_mode(tiny_setup, model_class, mode):
  the_model, params, the_batch, rng, expected = tiny_setup
  the_model = model_class(TINY, the_model.tasks)
  grads = gradients.task_gradients(the_model, params, the_batch, rng, mode=mode)
  np.testing.assert_allclose(grads.losses_k, task_losses(the_model, params, the_batch,
                                                         train=True, rng=rng), rtol=1e-6)
  # Any coefficients on the shared part, any weights on the heads: exactly the
  # gradient of the weighted sum of losses.
  assert_trees_close(grads.shared(COEFFS), linalg.combine(COEFFS, expected["encoder"]))
  assert_trees_close(grads.task_specific(WEIGHTS),
                     {"heads": linalg.combine(WEIGHTS, expected["heads"])})


# Every kind, with task params the encoder reads (adapters, task embeddings,
# expert gates) and shared params past it (cross-stitch units, experts).
KINDS = {"layerwise": {"shared_layers": 1}, "adapters": {"size": 4, "freeze_encoder": False},
         "mtl_attention": {"shared_layers": 1, "attention_size": 8}, "cross_stitch": {},
         "task_embedding": {}, "mmoe": {"num_experts": 2}, "cgc": {},
         "ple": {"shared_layers": 0, "levels": 2}}


@pytest.mark.parametrize("mode", ["full", "representation"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_architecture_gets_the_gradient_of_the_weighted_losses(kind, mode):
  model = sharing.build_model({"kind": kind, kind: KINDS[kind]}, TINY, task_heads())
  params = model.init(jax.random.key(0))
  # Off the zeros some kinds start at (adapters' up, task embeddings), so that
  # every parameter has a gradient.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree.unflatten(tree, [x + 0.05 * jax.random.normal(k, x.shape)
                                     for x, k in zip(leaves, keys)])
  the_batch, rng = batch(), jax.random.key(3)
  expected = per_task_gradients(model, params, the_batch, rng)
  grads = jax.jit(lambda p: (lambda g: (g.shared(COEFFS), g.task_specific(WEIGHTS)))(
      gradients.task_gradients(model, p, the_batch, rng, mode=mode)))(params)
  assert_trees_close(grads[0], linalg.combine(COEFFS, expected["encoder"]))
  assert_trees_close(grads[1], {key: linalg.combine(WEIGHTS, value)
                                for key, value in expected.items() if key != "encoder"})
  assert all(float(jnp.abs(x).max()) > 0 for x in jax.tree.leaves(grads[1]))


@pytest.mark.parametrize("model_class", [HardSharingModel, MixingModel])
def test_full_mode_gives_every_task_gradient(tiny_setup, model_class):
  the_model, params, the_batch, rng, expected = tiny_setup
  the_model = model_class(TINY, the_model.tasks)
  grads = gradients.task_gradients(the_model, params, the_batch, rng, mode="full")
  assert_trees_close(grads.shared_grads_k, expected["encoder"])
  assert_trees_close(grads.probes_k, expected["encoder"])


def test_last_layer_mode_probes_the_last_layer(tiny_setup):
  the_model, params, the_batch, rng, expected = tiny_setup
  grads = gradients.task_gradients(the_model, params, the_batch, rng,
                                   mode="last_layer")
  assert_trees_close(grads.probes_k, jax.tree.leaves(expected["encoder"]["layer_1"]))
  grads = gradients.task_gradients(the_model, params, the_batch, rng,
                                   mode="last_layer", last_layer="layer_1/output_norm")
  assert_trees_close(grads.probes_k, jax.tree.leaves(expected["encoder"]["layer_1"]
                                                     ["output_norm"]))


@pytest.mark.parametrize("model_class", [HardSharingModel, MixingModel])
def test_representation_probes_are_the_final_layernorm_bias_gradients(tiny_setup, model_class):
  # The gradient with respect to one shift of the representation shared by all
  # tasks is, for a post-LN encoder, the gradient of its last LayerNorm bias.
  the_model, params, the_batch, rng, expected = tiny_setup
  the_model = model_class(TINY, the_model.tasks)
  grads = gradients.task_gradients(the_model, params, the_batch, rng,
                                   mode="representation")
  assert grads.shared_grads_k is None
  np.testing.assert_allclose(grads.probes_k,
                             expected["encoder"]["layer_1"]["output_norm"]["bias"],
                             rtol=1e-4, atol=1e-7)


def test_last_layer_errors_name_the_problem(tiny_setup):
  the_model, params, *_ = tiny_setup
  with pytest.raises(ValueError, match="'layer_9' is not in the shared params"):
    gradients.last_layer_mask(params["encoder"], "layer_9")
  with pytest.raises(ValueError, match="no 'layer_<i>' entries"):
    gradients.last_layer_mask({"dense": params["encoder"]["embeddings"]})
  with pytest.raises(ValueError, match="unknown gradient mode 'rep'"):
    gradients.task_gradients(the_model, params, batch(), None, mode="rep")


# A table with more rows than the batch has tokens (64 here), so that the
# table's per-task gradients are kept compact where only probes are needed.
WIDE_VOCAB = TINY.replace(vocab_size=100)
SEPARABLE_KINDS = {"hard": {}, "adapters": {"size": 4, "freeze_encoder": False},
                   "task_embedding": {}, "mmoe": {"num_experts": 2}}


@pytest.mark.parametrize("mode", ["full", "last_layer"])
@pytest.mark.parametrize("kind", list(SEPARABLE_KINDS))
def test_compact_word_rows_give_the_dense_gram_norms_and_sums(kind, mode):
  model = sharing.build_model({"kind": kind, kind: SEPARABLE_KINDS[kind]}, WIDE_VOCAB,
                              task_heads())
  params = model.init(jax.random.key(0))
  the_batch, rng = batch(), jax.random.key(3)
  ids = [set(np.unique(the_batch[name]["input_ids"])) for name in ("news", "ner")]
  assert len(ids[0] & ids[1]) > 1, "the tasks must share token ids (off-diagonal table terms)"
  expected = per_task_gradients(model, params, the_batch, rng)["encoder"]

  def taken(p):
    grads = gradients.task_gradients(model, p, the_batch, rng, mode=mode,
                                     per_task_grads=False)
    return grads.probes_k, grads.shared(COEFFS), grads.shared_grads_k

  probes_k, shared, per_task = jax.jit(taken)(params)
  assert per_task is None  # the dense per-task tables were never formed
  if mode == "full":
    table_k = probes_k["embeddings"]["word"]["embedding"]
    assert table_k.shape == (2, 64, 16)  # one row per token slot, not per vocabulary entry
    np.testing.assert_allclose(linalg.gram(probes_k), linalg.gram(expected), rtol=1e-5)
    np.testing.assert_allclose(linalg.norms(probes_k), linalg.norms(expected), rtol=1e-5)
  else:
    last = jax.tree.leaves(gradients.last_layer_mask(params["encoder"]))
    assert_trees_close(probes_k, [leaf for leaf, keep in zip(jax.tree.leaves(expected), last)
                                  if keep])
  assert_trees_close(shared, linalg.combine(COEFFS, expected))


def test_word_rows_stay_dense_where_the_batch_has_more_tokens_than_the_table(tiny_setup):
  the_model, params, the_batch, rng, expected = tiny_setup  # 64 tokens, 30 rows
  grads = gradients.task_gradients(the_model, params, the_batch, rng, mode="full",
                                   per_task_grads=False)
  assert_trees_close(grads.probes_k, expected["encoder"])
  assert_trees_close(grads.shared(COEFFS), linalg.combine(COEFFS, expected["encoder"]))


class TwiceEncodedModel(HardSharingModel):
  """Looks its words up twice per task: the per-task copies keep the whole table."""

  def encode(self, params, batch, *, train, rng=None):
    once = super().encode(params, batch, train=train, rng=rng)
    again = super().encode(params, batch, train=train, rng=rng)
    return {name: 0.5 * (once[name] + again[name]) for name in once}


@pytest.mark.parametrize("per_task_grads", [True, False])
def test_a_model_that_looks_words_up_twice_keeps_whole_table_copies(per_task_grads):
  model = TwiceEncodedModel(WIDE_VOCAB, task_heads())
  params = model.init(jax.random.key(0))
  the_batch, rng = batch(), jax.random.key(3)
  expected = per_task_gradients(model, params, the_batch, rng)["encoder"]
  grads = gradients.task_gradients(model, params, the_batch, rng, mode="full",
                                   per_task_grads=per_task_grads)
  assert_trees_close(grads.probes_k, expected)  # the table's gradients whole: [2, 100, 16]
  assert_trees_close(grads.shared(COEFFS), linalg.combine(COEFFS, expected))


@pytest.mark.parametrize("slots, mode, per_task_grads", [
    ("task_token_slots", "full", True),
    ("task_token_slots", "full", False),  # the word table's gradient as compact rows
    ("task_token_slots", "last_layer", True),
    ("token_slots", "representation", True)])
def test_per_task_gradients_on_the_real_tokens_only_are_the_padded_ones(
    tiny_setup, slots, mode, per_task_grads, monkeypatch):
  """Token compaction: each task's pass (full, last_layer) or the one pass over all tasks
  (representation) on a compact buffer gives the padded step's losses and gradients."""
  from mtl_jax.encoders import compaction
  from mtl_jax.tasks.batching import with_token_slots

  model, params, batch, rng, _ = tiny_setup
  slotted = with_token_slots(batch, 4, each_task=slots == "task_token_slots")
  capacity = slotted[slots].shape[0]
  assert capacity < batch["news"]["attention_mask"].size * (1 if mode != "representation" else 2)
  padded = gradients.task_gradients(model, params, batch, rng, mode=mode,
                                    per_task_grads=per_task_grads)
  built = []
  token_index = compaction.token_index
  monkeypatch.setattr(compaction, "token_index",
                      lambda mask, capacity: built.append(capacity) or token_index(mask, capacity))
  compact = gradients.task_gradients(model, params, slotted, rng, mode=mode,
                                     per_task_grads=per_task_grads)
  # Every encoder pass of the step ran on the compact buffer: one per task, or one.
  assert set(built) == {capacity} and len(built) >= (2 if mode != "representation" else 1)
  np.testing.assert_allclose(compact.losses_k, padded.losses_k, rtol=1e-5)
  assert_trees_close(compact.probes_k, padded.probes_k, atol=2e-5)
  assert_trees_close(compact.shared(COEFFS), padded.shared(COEFFS), atol=2e-5)

"""Every sharing architecture: params as the config says, and the function it should compute."""

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np
import pytest

from mtl_jax import config as config_lib
from mtl_jax import sharing
from mtl_jax.encoders import Encoder, EncoderConfig
from mtl_jax.tasks.kinds import Classification, Tagging

V, P, T, D, F, L = 30, 16, 2, 16, 32, 3
TINY = EncoderConfig(vocab_size=V, hidden_size=D, num_layers=L, num_heads=2,
                     intermediate_size=F, max_position_embeddings=P)
HEADS = [sharing.TaskHead("ner", Tagging(), 4), sharing.TaskHead("news", Classification(), 3)]
K = len(HEADS)

# Known answers, by hand: a post-LN BERT layer is Q, K, V, O (d x d + d each),
# two LayerNorms (2d each) and the feed-forward block (d x f + f, f x d + d).
LAYER = 4 * (D * D + D) + 2 * (2 * D) + (D * F + F) + (F * D + D)
EMBEDDINGS = (V + P + T) * D + 2 * D
HEADS_SIZE = {"ner": D * 4 + 4, "news": (D * D + D) + (D * 3 + 3)}

# kind -> (options, {owner: expected param count}, extra shared entries).
ADAPTER = 2 * (D * 4 + 4) - 4 + D  # down (d x 4 + 4) and up (4 x d + d)
CASES = {
    "hard": ({}, {"shared": EMBEDDINGS + L * LAYER}),
    "layerwise": ({"shared_layers": 1},
                  {"shared": EMBEDDINGS + LAYER, "ner": 2 * LAYER, "news": 2 * LAYER}),
    "adapters": ({"size": 4, "placement": "houlsby"},
                 {"shared": EMBEDDINGS + L * LAYER, "ner": 2 * L * ADAPTER,
                  "news": 2 * L * ADAPTER}),
    "mtl_attention": ({"shared_layers": -1, "attention_size": 8},
                      {"shared": EMBEDDINGS + 2 * LAYER + 2 * D * 8 + 8,
                       "ner": LAYER, "news": LAYER}),
    "cross_stitch": ({"shared_layers": 0},
                     {"shared": EMBEDDINGS + L * K * K, "ner": L * LAYER, "news": L * LAYER}),
    "task_embedding": ({}, {"shared": EMBEDDINGS + L * LAYER, "ner": D, "news": D}),
    # Experts: the trunk and shared experts are shared; own experts and gates per task.
    "mmoe": ({"shared_layers": 1, "num_experts": 2},
             {"shared": EMBEDDINGS + LAYER + 2 * 2 * LAYER,
              "ner": D * 2 + 2, "news": D * 2 + 2}),
    "cgc": ({"shared_layers": 2, "shared_experts": 1, "task_experts": 2},
            {"shared": EMBEDDINGS + 2 * LAYER + LAYER,
             "ner": 2 * LAYER + D * 3 + 3, "news": 2 * LAYER + D * 3 + 3}),
    "ple": ({"shared_layers": 0, "levels": 2, "shared_experts": 1, "task_experts": 1},
            {"shared": EMBEDDINGS + L * LAYER,
             "ner": L * LAYER + 2 * (D * 2 + 2), "news": L * LAYER + 2 * (D * 2 + 2)}),
}


def _model(kind, **options):
  return sharing.build_model({"kind": kind, kind: options}, TINY, HEADS)


def _counts(model):
  abstract = jax.eval_shape(model.init, jax.random.key(0))
  owners = sharing.param_owners(model, abstract)
  counts = {}
  for owner, leaf in zip(jax.tree.leaves(owners), jax.tree.leaves(abstract)):
    counts[owner] = counts.get(owner, 0) + int(np.prod(leaf.shape))
  return abstract, counts


@pytest.mark.parametrize("kind", list(CASES))
def test_param_counts_and_owners_are_what_the_config_says(kind):
  options, expected = CASES[kind]
  model = _model(kind, **options)
  _, counts = _counts(model)
  want = dict(expected)
  for name, size in HEADS_SIZE.items():
    want[name] = want.get(name, 0) + size
  assert counts == want


@pytest.mark.parametrize("kind", list(CASES))
def test_no_two_leaves_share_a_buffer(kind, pretrained):
  # The train step donates the params: a buffer in two leaves would be donated twice.
  model = _model(kind, **CASES[kind][0])
  params = model.init(jax.random.key(0))
  # The run puts the encoder in place inside its jitted init (outputs sharded).
  jitted = jax.jit(model.with_encoder)(params, pretrained[0])
  for tree in (params, model.with_encoder(params, pretrained[0]), jitted):
    leaves = jax.tree.leaves(tree)
    assert len({id(x) for x in leaves}) == len(leaves)
    assert len({x.unsafe_buffer_pointer() for x in leaves}) == len(leaves)


def test_layerwise_splits_the_layers_by_name():
  model = _model("layerwise", shared_layers=-1)
  abstract = jax.eval_shape(model.init, jax.random.key(0))
  assert sorted(abstract["encoder"]) == ["embeddings", "layer_0", "layer_1"]
  assert {n: sorted(p) for n, p in abstract["task_encoders"].items()} == {
      "ner": ["layer_2"], "news": ["layer_2"]}
  assert sorted(sharing.shared_params(model, abstract)) == ["encoder"]


def test_adapter_placement_sets_the_sites():
  for placement, sites in (("houlsby", ["attention", "output"]), ("pfeiffer", ["output"])):
    model = _model("adapters", size=4, placement=placement)
    abstract = jax.eval_shape(model.init, jax.random.key(0))
    assert sorted(abstract["adapters"]["ner"]) == [f"layer_{i}" for i in range(L)]
    assert sorted(abstract["adapters"]["ner"]["layer_1"]) == sites
    assert model.frozen_keys == ("encoder",)
  assert _model("adapters", freeze_encoder=False).frozen_keys == ()


@pytest.mark.parametrize("kind", list(CASES))
def test_logical_axes_name_every_dim_and_task_copies_match_the_encoder(kind):
  model = _model(kind, **CASES[kind][0])
  axes = model.logical_axes()
  abstract = jax.eval_shape(model.init, jax.random.key(0))
  is_spec = lambda x: isinstance(x, jax.sharding.PartitionSpec)
  specs = jax.tree.leaves(axes, is_leaf=is_spec)
  assert len(specs) == len(jax.tree.leaves(abstract))
  assert all(len(s) == p.ndim for s, p in zip(specs, jax.tree.leaves(abstract)))
  for copy in axes.get("task_encoders", {}).values():
    assert tuple(copy[f"layer_{L - 1}"]["attention"]["qkv"]["kernel"]) == (
        "embed", "qkv", "heads", "kv")


@pytest.fixture(scope="module")
def pretrained(two_task_batch):
  """A stand-in for a pretrained encoder, and hard sharing's outputs with it."""
  ids = jnp.zeros((1, 8), jnp.int32)
  encoder = nn.unbox(Encoder(TINY).init(jax.random.key(7), ids, ids, ids)["params"])
  hard = _model("hard")
  params = hard.with_encoder(hard.init(jax.random.key(0)), encoder)
  return encoder, params["heads"], jax.jit(
      lambda p, b: hard.apply(p, b, train=False))(params, two_task_batch(b=3))


@pytest.mark.parametrize("kind", [k for k in CASES if k != "hard"])
def test_a_pretrained_encoder_put_in_place_computes_hard_sharing_at_init(kind, pretrained,
                                                                          two_task_batch):
  # Task copies equal the encoder's layers, adapters start at zero (up = 0),
  # cross-stitch rows sum to 1 over equal copies, attention averages equal
  # copies: each architecture starts as the pretrained encoder.
  encoder, heads, expected = pretrained
  model = _model(kind, **CASES[kind][0])
  params = model.with_encoder(model.init(jax.random.key(0)), encoder)
  params["heads"] = heads
  if kind == "task_embedding":
    params["task_embedding"] = jax.tree.map(jnp.zeros_like, params["task_embedding"])
  outputs = jax.jit(lambda p, b: model.apply(p, b, train=False))(params, two_task_batch(b=3))
  for name in expected:
    np.testing.assert_allclose(outputs[name], expected[name], atol=2e-5)


def test_encode_is_the_last_shared_layer_for_layerwise(pretrained, two_task_batch):
  encoder, _, _ = pretrained
  model = _model("layerwise", shared_layers=1)
  params = model.with_encoder(model.init(jax.random.key(0)), encoder)
  batch = two_task_batch(b=3)
  hidden = jax.jit(lambda p, b: model.encode(p, b, train=False))(params, batch)
  lower = Encoder(TINY, layers=(0,)).apply(
      {"params": {k: encoder[k] for k in ("embeddings", "layer_0")}},
      batch["news"]["input_ids"], batch["news"]["attention_mask"])
  np.testing.assert_allclose(hidden["news"], lower, atol=1e-5)
  # The copies are separate buffers (donated apart), equal to the encoder's layers.
  copies = params["task_encoders"]
  assert copies["ner"]["layer_1"]["output"]["kernel"] is not copies["news"]["layer_1"][
      "output"]["kernel"]
  np.testing.assert_array_equal(copies["ner"]["layer_2"]["output"]["kernel"],
                                encoder["layer_2"]["output"]["kernel"])


def test_multi_task_attention_matches_the_formula_in_numpy():
  rng = np.random.default_rng(0)
  k, b, l, d, a = 3, 2, 4, 5, 6
  x_bld, h_kbld = rng.normal(size=(b, l, d)), rng.normal(size=(k, b, l, d))
  w1, w2, v = rng.normal(size=(d, a)), rng.normal(size=(d, a)), rng.normal(size=(a,))
  expected = np.zeros((b, l, d))
  for i in range(b):
    for t in range(l):
      e = np.array([v @ np.tanh(w1.T @ x_bld[i, t] + w2.T @ h_kbld[j, i, t])
                    for j in range(k)])
      alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
      expected[i, t] = sum(alpha[j] * h_kbld[j, i, t] for j in range(k))
  got = sharing.multi_task_attention(*(jnp.asarray(x, jnp.float32)
                                       for x in (x_bld, h_kbld, w1, w2, v)))
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_cross_stitch_units_start_near_identity():
  model = _model("cross_stitch", self_weight=0.9)
  params = model.init(jax.random.key(0))
  assert sorted(params["cross_stitch"]) == [f"layer_{i}" for i in range(L)]
  np.testing.assert_allclose(params["cross_stitch"]["layer_0"], [[0.9, 0.1], [0.1, 0.9]])


@pytest.mark.parametrize("kind, options", [
    ("mmoe", {"shared_layers": 1, "num_experts": 2}),
    ("cgc", {"shared_layers": 1, "shared_experts": 2, "task_experts": 1}),
    ("ple", {"shared_layers": 0, "levels": 2, "shared_experts": 2, "task_experts": 1}),
])
def test_experts_are_mixed_by_their_task_gate_level_after_level(kind, options, two_task_batch):
  # The reference: the encoder module for the trunk and each expert, numpy for the
  # gates (softmax of x W + b per token) and the mixtures, shared experts first.
  model = _model(kind, **options)
  params = model.init(jax.random.key(0))
  # Gates far from uniform, so a mixed-up expert order or level would show.
  params["gates"] = jax.tree.map(lambda x: 40.0 * x, params["gates"])
  batch = two_task_batch(b=3)
  got = jax.jit(lambda p, b: model.encode(p, b, train=False))(params, batch)
  trunk = {k: v for k, v in params["encoder"].items() if k != "experts"}
  layers = model.levels
  assert [i for level in layers for i in level] == list(range(options["shared_layers"], L))
  for name in ("ner", "news"):
    mask = batch[name]["attention_mask"]
    x = np.asarray(Encoder(TINY, layers=tuple(range(options["shared_layers"]))).apply(
        {"params": trunk}, batch[name]["input_ids"], mask, batch[name]["token_type_ids"]))
    for j, level in enumerate(layers):
      experts = list(params["encoder"]["experts"][f"level_{j}"].values())
      experts += list(params.get("task_experts", {}).get(name, {}).get(f"level_{j}",
                                                                         {}).values())
      assert len(experts) == (options.get("num_experts", 0) + options.get("shared_experts", 0)
                              + options.get("task_experts", 0))
      outputs = np.stack([Encoder(TINY, layers=level, embeddings=False).apply(
          {"params": expert}, jnp.asarray(x), mask) for expert in experts])
      gate = params["gates"][name][f"level_{j}"]
      logits = x @ np.asarray(gate["kernel"]) + np.asarray(gate["bias"])
      weights = np.exp(logits - logits.max(-1, keepdims=True))
      weights /= weights.sum(-1, keepdims=True)
      x = np.einsum("ble,ebld->bld", weights, outputs)
    np.testing.assert_allclose(got[name], x, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind, options, message", [
    ("layerwise", {"shared_layers": 3}, r"shared_layers=3.*\[-3, 2\]"),
    ("cross_stitch", {"shared_layers": -4}, "shared_layers=-4"),
    ("adapters", {"placement": "middle"}, "houlsby, pfeiffer"),
    ("adapters", {"sise": 4}, "no option 'sise'"),
    ("mtl_attention", {"attention_size": 0}, "attention_size"),
    ("cross_stitch", {"self_weight": 0.0}, "self_weight"),
    ("hardd", {}, "did you mean 'hard'"),
    ("ple", {"shared_layers": -1, "levels": 2}, r"levels=2.*\[1, 1\]"),
    ("cgc", {"shared_experts": 0, "task_experts": 0}, "at least one expert"),
    ("mmoe", {"num_experts": 0}, "num_experts"),
    ("ple", {"task_experts": -1}, "task_experts must be >= 0"),
])
def test_bad_sharing_config_is_a_clear_error(kind, options, message):
  with pytest.raises(ValueError, match=message):
    _model(kind, **options)


def test_config_defaults_are_the_architectures_defaults():
  defaults = config_lib.default_config().sharing
  assert defaults.kind == "hard"
  for kind in sharing.ARCHITECTURES:
    assert dict(defaults.get(kind, {})) == sharing.options_of(kind), kind


@pytest.mark.parametrize("kind", ["layerwise", "cross_stitch", "adapters"])
def test_a_pretrained_checkpoint_fills_the_shared_part_and_every_task_copy(kind, shared_dir):
  from mtl_jax.encoders import load_pretrained
  config, encoder = load_pretrained(shared_dir / "models" / "all-MiniLM-L6-v2")
  model = sharing.build_model({"kind": kind, kind: {}}, config, HEADS)
  abstract = jax.eval_shape(model.init, jax.random.key(0))
  params = model.with_encoder(abstract, encoder)
  assert (jax.tree.structure(params) == jax.tree.structure(abstract))
  jax.tree.map(lambda p, a: np.testing.assert_equal(np.shape(p), a.shape), params, abstract)
  top = encoder["layer_5"]["intermediate"]["kernel"]
  for name in ("ner", "news"):
    copy = params.get("task_encoders", {name: params["encoder"]})[name]
    np.testing.assert_array_equal(copy["layer_5"]["intermediate"]["kernel"], top)


@pytest.mark.parametrize("kind", list(CASES))
def test_token_slots_compute_the_same_outputs_where_an_architecture_compacts(
    kind, two_task_batch, data_dir, monkeypatch):
  """`train.token_buckets`: the encoder on the real tokens only, the same function
  (dropout off); an architecture that cannot compact is refused before a run starts."""
  from mtl_jax.constants import TOKEN_SLOTS
  from mtl_jax.tasks.batching import with_token_slots
  from mtl_jax.training import run as run_lib

  options, _ = CASES[kind]
  config = config_lib.default_config()
  config.tasks = {"news": {"kind": "classification", "source": {
      "format": "csv", "splits": {"train": str(data_dir / "news_train.csv")}}}}
  config.sharing = {"kind": kind, kind: options}
  config.train.token_buckets = 4
  model_class = sharing.ARCHITECTURES[kind]
  if not model_class.compacts_tokens:
    with pytest.raises(ValueError, match=f"train.token_buckets: sharing '{kind}' runs"):
      run_lib.validate(config)
    return
  model = sharing.build_model({"kind": kind, kind: options},
                              TINY.replace(hidden_dropout=0.0, attention_dropout=0.0), HEADS)
  params = model.init(jax.random.key(0))
  batch = two_task_batch()
  slotted = with_token_slots(batch, 4)
  assert slotted[TOKEN_SLOTS].shape[0] < 2 * 4 * 8  # fewer rows than the padded slots
  padded = model.apply(params, batch, train=False)
  from mtl_jax.encoders import compaction
  built, token_index = [], compaction.token_index
  monkeypatch.setattr(compaction, "token_index",
                      lambda mask, capacity: built.append(capacity) or token_index(mask, capacity))
  compact = model.apply(params, slotted, train=False)
  assert built == [slotted[TOKEN_SLOTS].shape[0]]  # the shared encoder ran compacted, once
  np.testing.assert_allclose(compact["news"], padded["news"], atol=2e-5)
  real = batch["ner"]["attention_mask"][..., None].astype(np.float32)  # padding: never read
  np.testing.assert_allclose(compact["ner"] * real, padded["ner"] * real, atol=2e-5)

import json

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np
import pytest
import safetensors.numpy

from mtl_jax.encoders import (CheckpointError, Encoder, EncoderConfig, export_pretrained,
                              load_pretrained, mean_pool)
from mtl_jax.tasks import tokenization

TINY = EncoderConfig(vocab_size=40, hidden_size=16, num_layers=2, num_heads=4,
                     intermediate_size=24, max_position_embeddings=20)


def _params(config=TINY):
  ids = jnp.ones((1, 4), jnp.int32)
  return nn.unbox(Encoder(config).init(jax.random.PRNGKey(3), ids, ids, ids))["params"]


def test_minilm_gives_the_published_cosines(shared_dir):
  path = shared_dir / "models" / "all-MiniLM-L6-v2"
  config, params = load_pretrained(path)
  assert (config.num_layers, config.hidden_size, config.num_heads) == (6, 384, 12)
  tokenizer = tokenization.load_tokenizer(path)
  sentences = ["The weather is lovely today.", "It's so sunny outside!",
               "He drove to the stadium."]
  encoded = tokenization.encode_texts(tokenizer, sentences, max_length=128)
  length = max(len(x) for x in encoded.input_ids)
  ids = np.zeros((3, length), np.int32)
  mask = np.zeros((3, length), np.int32)
  for i, x in enumerate(encoded.input_ids):
    ids[i, :len(x)], mask[i, :len(x)] = x, 1
  hidden = Encoder(config).apply({"params": params}, ids, mask, np.zeros_like(ids))
  embeddings = mean_pool(hidden, mask)
  embeddings = embeddings / jnp.linalg.norm(embeddings, axis=-1, keepdims=True)
  cosines = np.asarray(embeddings @ embeddings.T)
  np.testing.assert_allclose([cosines[0, 1], cosines[0, 2], cosines[1, 2]],
                             [0.6660, 0.1046, 0.1411], atol=1e-3)


def test_export_then_load_round_trips(tmp_path):
  params = _params()
  tokenizer = tokenization.train_wordpiece(["a tiny corpus for a tiny vocab"] * 5,
                                           vocab_size=40)
  export_pretrained(tmp_path, TINY, params)
  tokenization.save_tokenizer(tokenizer, tmp_path)
  assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors",
                                                  "tokenizer.json", "vocab.txt"}
  tensors = safetensors.numpy.load_file(tmp_path / "model.safetensors")
  # HF layout: (out, in) linear weights under BertModel names.
  assert tensors["encoder.layer.0.intermediate.dense.weight"].shape == (24, 16)
  config, loaded = load_pretrained(tmp_path)
  assert config == TINY.replace(dtype="float32")
  jax.tree.map(np.testing.assert_array_equal, loaded, jax.tree.map(np.asarray, params))
  assert tokenization.load_tokenizer(tmp_path).get_vocab() == tokenizer.get_vocab()


def test_prefixed_and_legacy_layer_norm_names_load(tmp_path):
  export_pretrained(tmp_path, TINY, _params())
  tensors = safetensors.numpy.load_file(tmp_path / "model.safetensors")
  renamed = {}
  for name, value in tensors.items():
    name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
        "LayerNorm.bias", "LayerNorm.beta")
    renamed["bert." + name] = value
  safetensors.numpy.save_file(renamed, tmp_path / "model.safetensors")
  _, loaded = load_pretrained(tmp_path)
  np.testing.assert_array_equal(loaded["layer_1"]["output_norm"]["scale"],
                                tensors["encoder.layer.1.output.LayerNorm.weight"])


def test_missing_tensor_is_named(tmp_path):
  export_pretrained(tmp_path, TINY, _params())
  tensors = safetensors.numpy.load_file(tmp_path / "model.safetensors")
  del tensors["encoder.layer.1.attention.self.key.weight"]
  safetensors.numpy.save_file(tensors, tmp_path / "model.safetensors")
  with pytest.raises(CheckpointError, match="encoder.layer.1.attention.self.key.weight"):
    load_pretrained(tmp_path)


def test_misshaped_tensor_names_both_shapes(tmp_path):
  export_pretrained(tmp_path, TINY, _params())
  config = json.loads((tmp_path / "config.json").read_text())
  config["intermediate_size"] = 30
  (tmp_path / "config.json").write_text(json.dumps(config))
  with pytest.raises(CheckpointError, match=r"\(24, 16\).*\(16, 30\)"):
    load_pretrained(tmp_path)


def test_missing_files_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    load_pretrained(tmp_path)
  (tmp_path / "config.json").write_text(json.dumps(TINY.to_hf()))
  with pytest.raises(FileNotFoundError, match="model.safetensors"):
    load_pretrained(tmp_path)

"""The PyTorch reference of the benchmarked train step (benchmark-only code).

What a speed-minded PyTorch user writes for the same job: a BERT encoder as
Hugging Face's `BertModel` computes it, with q, k and v projected by one
fused `Linear` (as our encoder does), the fused attention kernel
`F.scaled_dot_product_attention`, post-LN layers and exact GELU; the same
two heads and masked losses as `mtl_jax.heads`; fused AdamW (`fused=True`,
one kernel over all parameters, on CPU since torch 2.4) with `foreach`
global-norm clipping and the same decay mask and learning-rate schedule as
`mtl_jax.training.optimizer`. `torch.compile` of the model is the other
row (`step_speed.py --compile`). It loads the encoder from the Hugging Face
layout that `mtl_jax.export_pretrained` writes, so it starts from our exact
initial weights without knowing our parameter layout.
"""

from __future__ import annotations

import os

import numpy as np
import safetensors.numpy
import torch
import torch.nn.functional as F
from torch import nn

IGNORE_LABEL = -100


class Layer(nn.Module):
  """One post-LN BERT layer (HF `BertLayer` with sdpa attention)."""

  def __init__(self, d: int, heads: int, ffn: int, eps: float, dropout: float):
    super().__init__()
    self.heads, self.dropout = heads, dropout
    self.qkv = nn.Linear(d, 3 * d)  # q, k and v in one matrix product
    self.attention_output = nn.Linear(d, d)
    self.attention_norm = nn.LayerNorm(d, eps=eps)
    self.intermediate = nn.Linear(d, ffn)
    self.output = nn.Linear(ffn, d)
    self.output_norm = nn.LayerNorm(d, eps=eps)

  def forward(self, x_bld, mask_b11l):
    b, l, d = x_bld.shape

    def split(t):
      return t.view(b, l, self.heads, d // self.heads).transpose(1, 2)

    p = self.dropout if self.training else 0.0
    query, key, value = self.qkv(x_bld).split(d, dim=-1)
    context = F.scaled_dot_product_attention(split(query), split(key), split(value),
                                             attn_mask=mask_b11l, dropout_p=p)
    context = context.transpose(1, 2).reshape(b, l, d)
    attended = F.dropout(self.attention_output(context), p, self.training)
    x_bld = self.attention_norm(x_bld + attended)
    h = F.gelu(self.intermediate(x_bld))
    return self.output_norm(x_bld + F.dropout(self.output(h), p, self.training))


class MultiTaskBert(nn.Module):
  """Shared encoder over the tasks' batches stacked together, then two heads."""

  def __init__(self, config, num_classes: int, num_tags: int, dropout: float):
    super().__init__()
    d = config.hidden_size
    self.config, self.dropout = config, dropout
    self.word = nn.Embedding(config.vocab_size, d)
    self.position = nn.Embedding(config.max_position_embeddings, d)
    self.token_type = nn.Embedding(config.type_vocab_size, d)
    self.embedding_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
    self.layers = nn.ModuleList(
        Layer(d, config.num_heads, config.intermediate_size, config.layer_norm_eps,
              dropout) for _ in range(config.num_layers))
    self.pooler = nn.Linear(d, d)
    self.classifier = nn.Linear(d, num_classes)
    self.tagger = nn.Linear(d, num_tags)

  def encode(self, ids_bl, types_bl, mask_bl):
    length = ids_bl.shape[1]
    positions = torch.arange(length, device=ids_bl.device)
    x = self.word(ids_bl) + self.position(positions)[None] + self.token_type(types_bl)
    x = F.dropout(self.embedding_norm(x), self.dropout, self.training)
    mask_b11l = mask_bl.bool()[:, None, None, :]
    for layer in self.layers:
      x = layer(x, mask_b11l)
    return x

  def forward(self, batch):
    """Losses [ner, news] (the model's task order) for a batch of both tasks."""
    ner, news = batch["ner"], batch["news"]
    hidden = self.encode(*(torch.cat([ner[k], news[k]]) for k in
                           ("input_ids", "token_type_ids", "attention_mask")))
    ner_hidden, news_hidden = hidden[:len(ner["input_ids"])], hidden[len(ner["input_ids"]):]
    tags = self.tagger(F.dropout(ner_hidden, self.dropout, self.training))
    ner_loss = F.cross_entropy(tags.flatten(0, 1), ner["labels"].flatten(),
                               ignore_index=IGNORE_LABEL)
    pooled = torch.tanh(self.pooler(news_hidden[:, 0]))
    logits = self.classifier(F.dropout(pooled, self.dropout, self.training))
    example_mask = news["attention_mask"][:, 0].float()
    per_example = F.cross_entropy(logits, news["labels"], reduction="none")
    news_loss = (per_example * example_mask).sum() / example_mask.sum().clamp(min=1.0)
    return torch.stack([ner_loss, news_loss])


def _hf_names(num_layers: int):
  """(our torch attribute path, HF tensor name) for every encoder tensor."""
  yield "word.weight", "embeddings.word_embeddings.weight"
  yield "position.weight", "embeddings.position_embeddings.weight"
  yield "token_type.weight", "embeddings.token_type_embeddings.weight"
  yield "embedding_norm.weight", "embeddings.LayerNorm.weight"
  yield "embedding_norm.bias", "embeddings.LayerNorm.bias"
  for i in range(num_layers):
    hf = f"encoder.layer.{i}"
    ours = f"layers.{i}"
    pairs = {"attention_output": "attention.output.dense",
             "attention_norm": "attention.output.LayerNorm",
             "intermediate": "intermediate.dense", "output": "output.dense",
             "output_norm": "output.LayerNorm"}
    for mine, theirs in pairs.items():
      for kind in ("weight", "bias"):
        yield f"{ours}.{mine}.{kind}", f"{hf}.{theirs}.{kind}"


def load_weights(model: MultiTaskBert, encoder_dir: str, heads: dict[str, np.ndarray]
                 ) -> None:
  """Copies an exported encoder (HF layout) and our heads' arrays into `model`.

  Args:
    model: the reference model.
    encoder_dir: a directory written by `mtl_jax.export_pretrained`.
    heads: flat head arrays keyed "task/module/kernel|bias" (ours: kernels
      are (in, out), transposed here to torch's (out, in)).
  """
  tensors = safetensors.numpy.load_file(os.path.join(encoder_dir, "model.safetensors"))
  state = {}
  for mine, theirs in _hf_names(model.config.num_layers):
    state[mine] = torch.from_numpy(np.array(tensors[theirs]))
  for i in range(model.config.num_layers):  # HF's q, k, v stacked into the fused qkv
    for kind in ("weight", "bias"):
      state[f"layers.{i}.qkv.{kind}"] = torch.from_numpy(np.concatenate([
          tensors[f"encoder.layer.{i}.attention.self.{p}.{kind}"]
          for p in ("query", "key", "value")]))
  for mine, ours in (("pooler", "news/pooler"), ("classifier", "news/output"),
                     ("tagger", "ner/output")):
    state[f"{mine}.weight"] = torch.from_numpy(np.array(heads[f"{ours}/kernel"].T))
    state[f"{mine}.bias"] = torch.from_numpy(np.array(heads[f"{ours}/bias"]))
  model.load_state_dict(state, strict=True)


def make_optimizer(model: nn.Module, config) -> torch.optim.AdamW:
  """AdamW as `mtl_jax.training.optimizer.make_optimizer`: no decay on biases and norms."""
  decayed, plain = [], []
  for name, param in model.named_parameters():
    is_norm = name.endswith("norm.weight")
    (plain if name.endswith(".bias") or is_norm else decayed).append(param)
  return torch.optim.AdamW(
      [{"params": decayed, "weight_decay": config["weight_decay"]},
       {"params": plain, "weight_decay": 0.0}],
      lr=config["learning_rate"], betas=(config["b1"], config["b2"]), eps=config["eps"],
      fused=True)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch,
               learning_rate: float, clip_norm: float) -> torch.Tensor:
  """One step on the equally weighted sum of the task losses; returns the losses.

  `model` may be the `torch.compile`d model (the forward and backward compiled).
  """
  for group in optimizer.param_groups:
    group["lr"] = learning_rate
  optimizer.zero_grad(set_to_none=True)
  losses = model(batch)
  losses.sum().backward()
  torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm, foreach=True)
  optimizer.step()
  return losses.detach()

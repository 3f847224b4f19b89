"""An independent PyTorch + `transformers` run of our training recipe (experiment-only code).

What it shares with mtl_jax is the data only: the tasks' files read, labelled
and tokenized by `mtl_jax.tasks`, and each task's batches in our exact order
(`training.loop.make_streams`, every task in every step padded to one length),
so a difference in the scores comes from the model and the optimisation, not
from which examples were seen. Everything else is written here as a PyTorch
user would, from the published recipe and not from our code:

- the encoder is `transformers.BertModel` loaded from the Hugging Face folder
  (`config.encoder.pretrained`), with its own dropout (hidden and
  attention-probability, the rates of `config.encoder`);
- heads as in BERT's `*ForSequenceClassification` / `*ForTokenClassification`
  (classification: [CLS] or mean pooling -> dense + tanh -> dropout -> linear;
  tagging: dropout -> linear), initialised as `transformers` initialises
  linear layers (normal, std `initializer_range`, zero bias);
- losses: mean cross-entropy over a task's real examples (tagging: over its
  labelled first sub-words), summed over the tasks (equal weights);
- AdamW (`torch.optim.AdamW`, fused) without decay on biases and LayerNorm
  weights, global-norm clipping of the summed gradient, linear warm-up then
  linear decay to 0 (the first update at learning rate 0, as optax and
  `transformers.get_linear_schedule_with_warmup` both do);
- scoring: the first sub-word's tag per word (words cut off by truncation
  are 'O'), seqeval span F1 and token accuracy; accuracy for classification.

    python experiments/reference/torch_recipe.py \\
        --config experiments/configs/agnews_conll.py:tasks=conll2003_ner,steps=300,seed=0 \\
        --out runs/reference/conll/seed_0

It writes `metrics.json` ({task: {metric: value}}, as `mtl-jax train` does) and
`train_log.jsonl` (each task's mean loss since the last log) to `--out`.
Supports the kinds of the seed setups (classification, tagging), the joint
schedule and equal weights; anything else is an error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import seqeval.metrics
import torch
import torch.nn.functional as F
import transformers
from torch import nn

from mtl_jax.config import load_config
from mtl_jax.constants import IGNORE_LABEL
from mtl_jax.tasks import tokenization
from mtl_jax.tasks.batching import eval_batches, joint_batches
from mtl_jax.training.loop import make_streams
from mtl_jax.training.run import build_tasks

class Head(nn.Module):
  """One task's head over the encoder's [b, l, d] output (BERT's task heads)."""

  def __init__(self, kind: str, hidden: int, num_labels: int, dropout: float,
               pooling: str, init_std: float):
    super().__init__()
    self.kind, self.pooling = kind, pooling
    self.dropout = nn.Dropout(dropout)
    self.pooler = nn.Linear(hidden, hidden) if kind == "classification" else None
    self.output = nn.Linear(hidden, num_labels)
    for layer in (self.pooler, self.output):
      if layer is not None:
        nn.init.normal_(layer.weight, std=init_std)
        nn.init.zeros_(layer.bias)

  def forward(self, hidden_bld, mask_bl):
    if self.kind == "tagging":
      return self.output(self.dropout(hidden_bld))
    if self.pooling == "cls":
      pooled = hidden_bld[:, 0]
    else:
      weights = mask_bl[..., None].to(hidden_bld.dtype)
      pooled = (hidden_bld * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return self.output(self.dropout(torch.tanh(self.pooler(pooled))))

  def loss(self, logits, batch):
    labels = batch["labels"]
    if self.kind == "tagging":
      return F.cross_entropy(logits.flatten(0, 1), labels.flatten(),
                             ignore_index=IGNORE_LABEL)
    rows = batch["attention_mask"][:, 0].to(logits.dtype)  # padding rows: all-zero mask
    per_row = F.cross_entropy(logits, labels, reduction="none")
    return (per_row * rows).sum() / rows.sum().clamp(min=1.0)


class Model(nn.Module):
  """`transformers.BertModel` shared by the tasks, one head each."""

  def __init__(self, pretrained: str, tasks, labels, encoder_cfg):
    super().__init__()
    self.encoder = transformers.BertModel.from_pretrained(
        pretrained, add_pooling_layer=False, attn_implementation="sdpa",
        hidden_dropout_prob=encoder_cfg.hidden_dropout,
        attention_probs_dropout_prob=encoder_cfg.attention_dropout)
    hidden = self.encoder.config.hidden_size
    init_std = self.encoder.config.initializer_range
    self.names = [t.name for t in tasks]
    self.heads = nn.ModuleDict({
        t.name: Head(t.kind, hidden, len(labels[t.name]), t.head.get("dropout", 0.1),
                     t.head.get("pooling", "cls"), init_std) for t in tasks})

  def forward(self, batches):
    """Each task's logits; the tasks' rows go through the encoder as one batch."""
    sizes = [len(batches[n]["input_ids"]) for n in self.names]
    stacked = {key: torch.cat([batches[n][key] for n in self.names])
               for key in ("input_ids", "token_type_ids", "attention_mask")}
    hidden = self.encoder(**stacked).last_hidden_state
    out = {}
    for name, hidden_n, mask_n in zip(self.names, hidden.split(sizes),
                                      stacked["attention_mask"].split(sizes)):
      out[name] = self.heads[name](hidden_n, mask_n)
    return out


def make_optimizer(model: nn.Module, opt) -> torch.optim.AdamW:
  decayed, plain = [], []
  for name, param in model.named_parameters():
    (plain if name.endswith("bias") or "LayerNorm" in name else decayed).append(param)
  return torch.optim.AdamW([{"params": decayed, "weight_decay": opt.weight_decay},
                            {"params": plain, "weight_decay": 0.0}],
                           lr=opt.learning_rate, betas=(opt.b1, opt.b2), eps=opt.eps,
                           fused=True)


def lr_factor(step: int, warmup: int, total: int) -> float:
  """Linear warm-up from 0, then linear decay to 0 (step = updates done so far)."""
  if step < warmup:
    return step / warmup
  return max(0.0, 1.0 - (step - warmup) / max(total - warmup, 1))


def to_torch(batch):
  return {k: torch.from_numpy(np.asarray(v)).long() for k, v in batch.items()}


@torch.no_grad()
def evaluate(model: Model, tasks, splits, labels, batch_size, buckets):
  model.eval()
  results = {}
  for task in tasks:
    split, names = splits[task.name], labels[task.name]
    predictions = [None] * len(split)
    for indices, batch in eval_batches(split, batch_size, buckets):
      logits = model.heads[task.name](
          model.encoder(**{k: torch.from_numpy(batch[k]).long() for k in
                           ("input_ids", "token_type_ids", "attention_mask")}
                        ).last_hidden_state,
          torch.from_numpy(batch["attention_mask"]))
      out = logits.argmax(-1).numpy()
      for row, index in enumerate(indices):
        predictions[index] = out[row]
    if task.kind == "tagging":
      gold = split.raw.column("tags")
      predicted = []
      for p, word_ids, words in zip(predictions, split.word_ids, gold):
        tags, seen = [], set()
        for position, word in enumerate(word_ids):
          if word >= 0 and word not in seen:  # the word's first sub-word
            seen.add(word)
            tags.append(names[int(p[position])])
        predicted.append(tags + ["O"] * (len(words) - len(tags)))
      gold = [list(g) for g in gold]
      correct = sum(p == g for ps, gs in zip(predicted, gold) for p, g in zip(ps, gs))
      results[task.name] = {
          "span_f1": float(seqeval.metrics.f1_score(gold, predicted)),
          "token_accuracy": correct / sum(len(g) for g in gold)}
    else:
      gold = np.asarray(split.labels)
      results[task.name] = {"accuracy": float(np.mean(np.asarray(predictions) == gold))}
  model.train()
  return results


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True, help="an mtl_jax config, as `mtl-jax train`")
  parser.add_argument("--out", required=True)
  parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
  args = parser.parse_args(argv)
  config = load_config(args.config)
  if config.schedule != "joint" or config.weighting not in ("equal", "equal()"):
    raise ValueError("the reference implements the joint schedule with equal weights only")
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(config.seed)
  tasks = build_tasks(config)
  for task in tasks:
    if task.kind not in ("classification", "tagging"):
      raise ValueError(f"task {task.name}: kind {task.kind!r} is not in the reference")
  tokenizer = tokenization.load_tokenizer(config.encoder.pretrained)
  raw = {t.name: t.read("train") for t in tasks}
  labels = {t.name: t.label_vocab(raw[t.name]) for t in tasks}
  train = {t.name: t.load("train", tokenizer, labels[t.name], raw=raw[t.name]) for t in tasks}
  evals = {t.name: t.load("eval", tokenizer, labels[t.name]) for t in tasks}
  cfg = config.train
  batches = joint_batches(make_streams(train, cfg.batch_size, cfg.buckets, config.seed))

  model = Model(config.encoder.pretrained, tasks, labels, config.encoder)
  model.train()
  opt_cfg = config.optimizer
  optimizer = make_optimizer(model, opt_cfg)
  schedule = torch.optim.lr_scheduler.LambdaLR(
      optimizer, lambda s: lr_factor(s, opt_cfg.warmup_steps, cfg.steps))
  os.makedirs(args.out, exist_ok=True)
  names = model.names
  sums, count, start = np.zeros(len(names)), 0, time.time()
  with open(os.path.join(args.out, "train_log.jsonl"), "w") as log:
    for step in range(cfg.steps):
      batch = {n: to_torch(b) for n, b in next(batches).items()}
      logits = model(batch)
      losses = torch.stack([model.heads[n].loss(logits[n], batch[n]) for n in names])
      optimizer.zero_grad(set_to_none=True)
      losses.sum().backward()
      grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), opt_cfg.clip_norm,
                                                 foreach=True)
      optimizer.step()
      schedule.step()
      sums += losses.detach().numpy()
      count += 1
      if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
        record = {"step": step + 1, "losses": dict(zip(names, (sums / count).tolist())),
                  "grad_norm": float(grad_norm), "seconds": round(time.time() - start, 1)}
        log.write(json.dumps(record) + "\n")
        log.flush()
        print(record, flush=True)
        sums, count = np.zeros(len(names)), 0
      if not math.isfinite(float(losses.detach().sum())):
        raise FloatingPointError(f"step {step + 1}: non-finite loss {losses.tolist()}")
  results = evaluate(model, tasks, evals, labels, cfg.eval_batch_size, cfg.buckets)
  with open(os.path.join(args.out, "metrics.json"), "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
  print(json.dumps(results))
  return results


if __name__ == "__main__":
  main()

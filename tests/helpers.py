"""What several test modules share: a tiny two-task model, its batches, tree checks,
and the data behind a saved figure. Tests import it (`from helpers import ...`);
test modules never import each other.
"""

from __future__ import annotations

import importlib.util
import pathlib

import jax
import numpy as np

from mtl_jax.encoders import EncoderConfig
from mtl_jax.sharing import HardSharingModel, TaskHead
from mtl_jax.tasks.kinds import Classification, Tagging

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"


def load_experiment_script(name: str):
  """The module of `experiments/<name>.py` (a script, not a package module)."""
  spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


# Kind objects of the two tiny tasks: 'news' (3 classes) and 'ner' (4 tags).
KINDS = {"news": Classification(), "ner": Tagging()}


def tiny_config(**changes) -> EncoderConfig:
  """A 2-layer encoder of width 16 over a 30-token vocabulary (fields overridable)."""
  config = EncoderConfig(vocab_size=30, hidden_size=16, num_layers=2, num_heads=2,
                         intermediate_size=32, max_position_embeddings=16)
  return config.replace(**changes)


# No encoder dropout, so per-task encoder passes and the stacked pass agree.
NO_DROPOUT = tiny_config(hidden_dropout=0.0, attention_dropout=0.0)


def per_task_gradients(model, params, batch, rng):
  """The reference: per-task gradients of every parameter, one backward pass per task."""
  from mtl_jax.training import task_losses

  return jax.jacrev(lambda p: task_losses(model, p, batch, train=True, rng=rng))(params)


def task_heads(order=("news", "ner")) -> list[TaskHead]:
  sizes = {"news": 3, "ner": 4}
  return [TaskHead(name, KINDS[name], sizes[name]) for name in order]


def two_task_model(config: EncoderConfig | None = None,
                   model_class=HardSharingModel, **options) -> HardSharingModel:
  """`model_class` over `config` (default `tiny_config()`) with the news and ner heads."""
  return model_class(config or tiny_config(), task_heads(), **options)


def two_task_batch(seed=0, b=4, length=8, vocab=30):
  """A random joint batch of 'news' and 'ner'; rows have 3 to `length` real tokens."""
  rng = np.random.default_rng(seed)
  mask = (np.arange(length)[None] < rng.integers(3, length + 1, (b, 1))).astype(np.int32)

  def task(labels):
    return {"input_ids": (rng.integers(1, vocab, (b, length)) * mask).astype(np.int32),
            "token_type_ids": np.zeros((b, length), np.int32),
            "attention_mask": mask, "labels": labels}

  tags = np.where(mask == 1, rng.integers(0, 4, (b, length)), -100).astype(np.int32)
  return {"news": task(rng.integers(0, 3, b).astype(np.int32)), "ner": task(tags)}


def assert_trees_close(actual, expected, atol=1e-6, rtol=1e-4):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=rtol, atol=atol),
               actual, expected)


def capture_figures(monkeypatch) -> list:
  """Every matplotlib figure saved from now on (still written to disk), to read its data."""
  import matplotlib.figure

  saved = []
  original = matplotlib.figure.Figure.savefig

  def savefig(figure, *args, **kwargs):
    saved.append(figure)
    return original(figure, *args, **kwargs)

  monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
  return saved


def drawn_lines(figure) -> dict[tuple[str, str], tuple[list, list]]:
  """{(axis title or y label, line label): (x values, y values)} of a figure's lines."""
  lines = {}
  for axis in figure.axes:
    name = axis.get_title() or axis.get_ylabel()
    for line in axis.get_lines():
      if line.get_label().startswith("_"):  # unlabelled guides (axhline)
        continue
      lines[(name, line.get_label())] = ([float(x) for x in line.get_xdata()],
                                         [float(y) for y in line.get_ydata()])
  return lines


# A config file's text (`.format(data=DIR)`): two tiny tasks, 'news' (classification)
# and 'ner' (tagging), a 1-layer encoder from scratch, a few steps; for `mtl-jax compare`,
# `pareto` and the selection of learning rates.
def tiny_loop_config(data_dir: pathlib.Path):
  """A default config over the tiny 'news' (csv) and 'ner' (CoNLL) files of `data_dir`, a
  1-layer encoder of width 16, a 200-token vocabulary and one device: for whole loop runs."""
  from mtl_jax import config as config_lib

  config = config_lib.default_config()
  config.tasks = {
      "news": {"kind": "classification", "source": {"format": "csv", "splits": {
          "train": str(data_dir / "news_train.csv"), "eval": str(data_dir / "news_dev.csv")}}},
      "ner": {"kind": "tagging", "source": {"format": "conll", "splits": {
          "train": str(data_dir / "ner_train.txt")}}},
  }
  config.encoder.update(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
  config.tokenizer.vocab_size = 200
  config.mesh.shape.data = 1  # one device: tiny batches
  return config


COMPARE_CONFIG = """
from mtl_jax.config import default_config

def get_config(arg=None):
  c = default_config()
  c.tasks = {{
      "news": {{"kind": "classification", "source": {{"format": "csv", "splits": {{
          "train": "{data}/news_train.csv", "eval": "{data}/news_dev.csv"}}}}}},
      "ner": {{"kind": "tagging", "source": {{"format": "conll", "splits": {{
          "train": "{data}/ner_train.txt", "eval": "{data}/ner_valid.txt"}}}},
          "max_length": 32, "metrics": ["token_accuracy", "span_f1"]}},
  }}
  c.encoder.update(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
  c.tokenizer.vocab_size = 200
  c.balancing.method = "uncertainty"
  c.balancing.diagnostics = True
  c.optimizer.update(learning_rate=3e-3, schedule="constant")
  c.train.update(steps=8, batch_size=8, buckets=(32,), log_every=4, eval_batch_size=32)
  c.mesh.shape.data = 1  # one device: compiles faster than a partitioned program
  return c
"""

# As COMPARE_CONFIG, trained long enough to learn (30 steps, mean pooling): whole runs.
RUN_CONFIG = """
from mtl_jax.config import default_config

def get_config(arg=None):
  c = default_config()
  c.tasks = {{
      "news": {{"kind": "classification", "source": {{"format": "csv", "splits": {{
          "train": "{data}/news_train.csv", "eval": "{data}/news_dev.csv"}}}},
          # Mean pooling: a [CLS] head on a 1-layer encoder from scratch barely moves in 30 steps.
          "head": {{"pooling": "mean"}}}},
      "ner": {{"kind": "tagging", "source": {{"format": "conll", "splits": {{
          "train": "{data}/ner_train.txt", "eval": "{data}/ner_valid.txt"}}}},
          "max_length": 32}},
  }}
  c.encoder.update(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
  c.tokenizer.vocab_size = 200
  c.optimizer.update(learning_rate=3e-3, warmup_steps=5, schedule="constant")
  c.train.update(steps=int(arg or 30), batch_size=8, buckets=(16, 32), log_every=10,
                 eval_batch_size=16)
  return c
"""


def exact_min_quadratic_above(gram, lower):
  """argmin_{v >= lower} v^T G v in float64, by trying every free set (KKT)."""
  import itertools

  k = len(lower)
  for size in range(k + 1):
    for free in itertools.combinations(range(k), size):
      fixed = [j for j in range(k) if j not in free]
      v = lower.copy()
      if free:
        v[list(free)] = np.linalg.solve(gram[np.ix_(free, free)],
                                        -gram[np.ix_(free, fixed)] @ lower[fixed])
      if np.all(v >= lower - 1e-12) and np.all((gram @ v)[fixed] >= -1e-12):
        return v
  raise AssertionError("no KKT point")

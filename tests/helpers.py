"""What several test modules share: a tiny two-task model, its batches, tree checks,
and the data behind a saved figure. Tests import it (`from helpers import ...`);
test modules never import each other.
"""

from __future__ import annotations

import jax
import numpy as np

from mtl_jax.encoders import EncoderConfig
from mtl_jax.sharing import HardSharingModel, TaskHead
from mtl_jax.tasks.kinds import Classification, Tagging

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

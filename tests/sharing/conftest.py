"""Tiny two-task batches for the sharing tests."""

import numpy as np
import pytest


def tiny_batch(seed=0, b=4, length=8, vocab=30, num_tags=4, num_classes=3):
  """{'ner': tagging batch, 'news': classification batch}, random, with padding."""
  rng = np.random.default_rng(seed)
  mask = (np.arange(length)[None] < rng.integers(3, length + 1, (b, 1))).astype(np.int32)

  def task(labels):
    return {"input_ids": (rng.integers(1, vocab, (b, length)) * mask).astype(np.int32),
            "token_type_ids": np.zeros((b, length), np.int32),
            "attention_mask": mask, "labels": labels}

  tags = np.where(mask == 1, rng.integers(0, num_tags, (b, length)), -100).astype(np.int32)
  return {"news": task(rng.integers(0, num_classes, b).astype(np.int32)), "ner": task(tags)}


@pytest.fixture(scope="session")
def make_batch():
  return tiny_batch

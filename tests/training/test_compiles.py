"""The real loop compiles its train step once per bucket shape and never again."""

import collections

import jax
import pytest
from jax._src import monitoring

from mtl_jax import config as config_lib
from mtl_jax.constants import TOKEN_SLOTS
from mtl_jax.tasks.batching import with_token_slots
from mtl_jax.training import loop

from helpers import tiny_loop_config

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@pytest.mark.parametrize("token_buckets", [0, 4])
def test_one_compilation_per_bucket_shape_and_none_after_warm_up(tmp_path, data_dir,
                                                                  monkeypatch, token_buckets):
  """With token compaction a shape is (length, capacity): at most 4 capacities a length."""
  config = tiny_loop_config(data_dir)
  steps = 16
  config.train.update(steps=steps, batch_size=4, buckets=(8, 16, 32), log_every=4,
                      eval_batch_size=8, token_buckets=token_buckets)

  # A schedule that drops tasks from steps runs the same compiled step.
  config.schedule = "alternating(weights={'ner': [(0, 0.5), (16, 1.0)]})"
  config = config_lib.resolve(config)

  lengths = []
  scheduled_batches = loop.scheduled_batches

  def recording(streams, schedule, first_step):
    for batch in scheduled_batches(streams, schedule, first_step):
      length = next(iter(batch.values()))["input_ids"].shape[1]
      slots = with_token_slots(batch, token_buckets)[TOKEN_SLOTS] if token_buckets else None
      lengths.append((length, None if slots is None else slots.shape[0]))
      yield batch

  monkeypatch.setattr(loop, "scheduled_batches", recording)
  compiles = collections.Counter()

  def count(event, duration, fun_name=None, **kwargs):
    del duration, kwargs
    if event == COMPILE_EVENT:  # fun_name is e.g. "jit(loop_step)"
      compiles[fun_name.removeprefix("jit(").removesuffix(")")] += 1

  jax.monitoring.register_event_duration_secs_listener(count)
  try:
    loop.train(config, str(tmp_path / "work"), progress=False)
  finally:
    monitoring.unregister_event_duration_listener(count)

  shapes = set(lengths[:steps])  # the prefetcher may have built a few more
  assert len(shapes) >= 2, f"the run should meet several bucket shapes, met {shapes}"
  assert compiles["loop_step"] == len(shapes), compiles
  assert 1 <= compiles["predict_step"] <= len(config.train.buckets)

"""`train.token_buckets`: the loop's steps on the real tokens only train the same model."""

import json

import numpy as np

from mtl_jax import config as config_lib
from mtl_jax.training import loop

from helpers import tiny_loop_config


def _config(data_dir, steps, token_buckets, ner_eval=None):
  config = tiny_loop_config(data_dir)  # one device, as token compaction needs
  if ner_eval:
    config.tasks.ner.source.splits.eval = str(ner_eval)
  # Dropout off: with it, the compact buffer draws other masks (same rate).
  config.encoder.update(hidden_dropout=0.0, attention_dropout=0.0)
  config.optimizer.schedule = "constant"  # a run of 6 steps then 12 is one of 12
  config.train.update(steps=steps, batch_size=4, buckets=(8, 16, 32), log_every=2,
                      eval_batch_size=8, token_buckets=token_buckets)
  return config_lib.resolve(config)


def _losses(workdir):
  with open(workdir / loop.TRAIN_LOG) as f:
    return {r["step"]: r["losses"] for r in map(json.loads, f) if "losses" in r}


def test_compact_steps_train_what_padded_steps_train_and_a_run_can_switch(tmp_path, data_dir,
                                                                          capsys):
  padded = tmp_path / "padded"
  expected = loop.train(_config(data_dir, 12, 0), str(padded), progress=False)
  switched = tmp_path / "switched"  # 6 padded steps, then resumed with compaction
  loop.train(_config(data_dir, 6, 0), str(switched), progress=False)
  capsys.readouterr()
  metrics = loop.train(_config(data_dir, 12, 4), str(switched), progress=False)
  assert "token slots (once per length bucket and capacity)" in capsys.readouterr().out

  want, got = _losses(padded), _losses(switched)
  assert sorted(got) == sorted(want) == list(range(2, 13, 2))
  for step in want:
    for task in ("news", "ner"):
      np.testing.assert_allclose(got[step][task], want[step][task], rtol=1e-5,
                                 err_msg=f"step {step} task {task}")
  np.testing.assert_allclose(metrics["news"]["accuracy"], expected["news"]["accuracy"])


def test_a_step_with_per_task_gradients_compacts_each_tasks_pass(tmp_path, data_dir, capsys):
  """PCGrad ('full' mode) encodes each task apart: every pass on the largest task's capacity."""
  runs = {}
  for token_buckets in (0, 4):
    config = _config(data_dir, 6, token_buckets)
    config.balancing.method = "pcgrad"
    workdir = tmp_path / f"buckets_{token_buckets}"
    capsys.readouterr()
    loop.train(config, str(workdir), progress=False)
    runs[token_buckets] = _losses(workdir)
  assert "token slots (once per length bucket and capacity)" in capsys.readouterr().out
  for step in runs[0]:
    for task in ("news", "ner"):
      np.testing.assert_allclose(runs[4][step][task], runs[0][step][task], rtol=1e-5)


def test_evaluation_with_token_buckets_predicts_what_padded_evaluation_does(data_dir,
                                                                           monkeypatch):
  """Each evaluation batch through the encoder on its real tokens: the same predictions."""
  import jax

  from mtl_jax.encoders import compaction
  from mtl_jax.tasks.batching import eval_batches
  from mtl_jax.training.evaluate import predict_split
  from mtl_jax.training import run as run_lib
  from mtl_jax.training.step import make_predict_step

  config = _config(data_dir, 2, 4, ner_eval=data_dir / "ner_valid.txt")
  run = run_lib.prepare(config)
  _, splits = loop.load_splits(run)
  params = run.model.init(jax.random.key(1))
  predict = jax.jit(make_predict_step(run.model))
  built, token_index = [], compaction.token_index
  monkeypatch.setattr(compaction, "token_index",
                      lambda mask, capacity: built.append(capacity) or token_index(mask, capacity))
  for name, split in splits.items():
    batches = list(eval_batches(split, 8, (8, 16, 32)))
    padded = predict_split(predict, params, name, split, 8, (8, 16, 32))
    assert not built
    compact = predict_split(predict, params, name, split, 8, (8, 16, 32), token_buckets=4)
    slots = [batch["attention_mask"].size for _, batch in batches]
    assert len(built) >= 1 and sum(built) < sum(slots)  # traced compacted, on fewer rows
    built.clear()
    assert len(compact) == len(padded) == len(split)
    for got, want in zip(compact, padded):
      np.testing.assert_array_equal(got, want)

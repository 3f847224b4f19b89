"""Checkpointer: keep the latest and the best, step choice, clear errors, no half saves."""

import errno
import os
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.training.checkpoint import Checkpointer

ABSTRACT = {"w": jax.ShapeDtypeStruct((3,), jnp.float32)}


def _state(value):
  return {"w": jnp.full((3,), value, jnp.float32)}


@pytest.fixture
def saved(tmp_path):
  """Steps 1-5 saved with keep=2 and best by accuracy (step 4 has no metrics)."""
  checkpointer = Checkpointer(str(tmp_path / "ckpt"), max_to_keep=2,
                              best_metric="news/accuracy")
  accuracy = {1: 0.5, 2: 0.9, 3: 0.6, 4: None, 5: 0.7}
  for step, value in accuracy.items():
    checkpointer.save(step, _state(step), {"streams": {"news": {"epoch": 0, "batch": step}}},
                      run_files={"config.json": {"seed": 0}},
                      metrics=None if value is None else {"news/accuracy": value})
  checkpointer.wait()
  yield checkpointer
  checkpointer.close()


def test_keeps_the_latest_and_the_best(saved):
  assert saved.steps() == [2, 4, 5]
  assert saved.latest_step() == 5
  assert saved.best_step() == 2


def test_restores_the_best_latest_or_a_given_step_with_its_meta(saved):
  for step, expected in ((None, 5), ("latest", 5), ("best", 2), (4, 4)):
    state, meta = saved.restore(ABSTRACT, step)
    np.testing.assert_array_equal(state["w"], np.full(3, expected, np.float32))
    assert meta["streams"]["news"]["batch"] == expected


def test_min_mode_keeps_the_lowest(tmp_path):
  checkpointer = Checkpointer(str(tmp_path), max_to_keep=1, best_metric="sts/loss",
                              best_mode="min")
  for step, loss in ((1, 0.3), (2, 0.1), (3, 0.2), (4, 0.4)):
    checkpointer.save(step, _state(step), {}, metrics={"sts/loss": loss})
  checkpointer.wait()
  assert checkpointer.steps() == [2, 4] and checkpointer.best_step() == 2
  checkpointer.close()


def test_missing_step_and_missing_best_metric_are_clear_errors(saved, tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoint of step 3; there are: "
                     r"\[2, 4, 5\]"):
    saved.restore(ABSTRACT, 3)
  plain = Checkpointer(str(tmp_path / "plain"))
  with pytest.raises(ValueError, match="best_metric is not set"):
    plain.resolve("best")
  with pytest.raises(FileNotFoundError, match="no checkpoint to restore"):
    plain.resolve(None)
  plain.close()


def test_a_checkpoint_of_another_shape_is_a_clear_error(saved):
  with pytest.raises(ValueError, match=r"/5: cannot restore this checkpoint: it is "
                     r"corrupt or does not match.*stored shape: \(3,\)"):
    saved.restore({"w": jax.ShapeDtypeStruct((4,), jnp.float32)})


def test_a_corrupt_checkpoint_is_a_clear_error_naming_an_earlier_one(saved):
  state_dir = os.path.join(saved.directory, "5", "state")
  for root, _, files in os.walk(state_dir):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  with pytest.raises(ValueError, match="/5: cannot restore.*move it out of .* to resume "
                     r"from step 4 \(eval, predict and export read that one with --step 4\)"
                     ) as raised:
    saved.restore(ABSTRACT)
  assert "\n" not in str(raised.value)  # one line: no tensorstore spec dump


def test_an_unfinished_save_is_ignored_and_the_previous_checkpoint_restores(saved):
  # What a save killed half-way leaves: a temporary directory, never renamed.
  os.makedirs(os.path.join(saved.directory, "6.orbax-checkpoint-tmp", "state"))
  reopened = Checkpointer(saved.directory, max_to_keep=2, best_metric="news/accuracy")
  assert reopened.latest_step() == 5
  state, _ = reopened.restore(ABSTRACT)
  np.testing.assert_array_equal(state["w"], np.full(3, 5, np.float32))
  reopened.close()


def test_a_save_without_metrics_under_keep_best_logs_nothing(tmp_path, caplog):
  # Periodic and preemption saves carry no metrics by design; orbax's note on
  # them ("did not provide metrics") read as a problem in every run's log.
  checkpointer = Checkpointer(str(tmp_path), best_metric="news/accuracy")
  with caplog.at_level("WARNING"):
    checkpointer.save(1, _state(1), {})
    checkpointer.wait()
  checkpointer.close()
  assert not [r for r in caplog.records if "metrics" in r.getMessage()], caplog.text
  assert checkpointer.steps() == [1]


@pytest.fixture
def small_disk(tmp_path):
  """A 512 KiB tmpfs: a real full disk (skipped where this process cannot mount one)."""
  path = tmp_path / "disk"
  path.mkdir()
  mounted = os.geteuid() == 0 and subprocess.run(
      ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(path)],
      capture_output=True).returncode == 0
  if not mounted:
    pytest.skip("a full disk needs a small tmpfs: mounting one needs root")
  yield path
  subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_full_disk_is_one_line_naming_the_step_and_keeps_the_last_checkpoint(
    small_disk, caplog, capfd):
  checkpointer = Checkpointer(str(small_disk / "ckpt"))
  checkpointer.save(1, _state(1), {})
  checkpointer.wait()
  with caplog.at_level("WARNING"):
    with pytest.raises(OSError, match=r"checkpoint of step 2 could not be written: no space "
                       r"left on device .*; the checkpoint of step 1 is kept") as failed:
      # 4 MiB that do not compress.
      checkpointer.save(2, {"w": jax.random.normal(jax.random.key(0), (1 << 20,))}, {})
      checkpointer.wait()
  assert failed.value.errno == errno.ENOSPC
  assert len(str(failed.value).splitlines()) == 1
  # orbax's background threads logged a traceback each (a hundred lines apiece).
  assert not [r for r in caplog.records if r.exc_info], caplog.text
  assert capfd.readouterr().err.count("Traceback") <= 1  # asyncio's, printed by C code
  assert checkpointer.steps() == [1]
  state, _ = checkpointer.restore(ABSTRACT, 1)
  np.testing.assert_array_equal(state["w"], _state(1)["w"])
  checkpointer.close()


def test_training_onto_a_full_disk_ends_in_one_line_and_no_traceback(tmp_path, data_dir):
  # A real `mtl-jax train` process, as a user sees it: orbax's threads, asyncio
  # and tensorstore's callbacks printed 150-340 lines and 5-17 tracebacks here.
  import sys

  from helpers import RUN_CONFIG

  disk = tmp_path / "disk"
  disk.mkdir()
  if os.geteuid() != 0 or subprocess.run(
      ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(disk)],
      capture_output=True).returncode != 0:
    pytest.skip("a full disk needs a small tmpfs: mounting one needs root")
  try:
    config = tmp_path / "tiny.py"
    config.write_text(RUN_CONFIG.format(data=data_dir))
    done = subprocess.run(
        [sys.executable, "-m", "mtl_jax.cli", "train", "--config", f"{config}:4", "--workdir",
         str(disk / "work"), "--no-progress", "--set", "train.checkpoint_every=2"],
        capture_output=True, text=True, timeout=600)
  finally:
    subprocess.run(["umount", "-l", str(disk)], check=True)
  assert done.returncode == 2, done.stderr
  assert "Traceback" not in done.stderr, done.stderr
  errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
  assert len(errors) == 1 and errors[0].startswith("mtl-jax: error: "), done.stderr
  # The checkpoint's or the training log's write fails first, as the disk fills.
  assert "no space left on device" in errors[0].lower(), done.stderr
  assert str(disk / "work") in errors[0], done.stderr

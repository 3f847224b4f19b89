"""Resume is exact: from a mid-run checkpoint, after SIGTERM, after kill -9 mid-save.

Every run here trains the same tiny model on the same config, so they share
the compiled programs (the session's compilation cache, also used by the
CLI subprocesses). Each interrupted run is resumed to the end and compared,
bit for bit, with one uninterrupted reference run.
"""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from mtl_jax import cli
from mtl_jax.config import load_config
from mtl_jax.tasks import tokenization
from mtl_jax.training import run as run_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS = 12

CONFIG = """
from mtl_jax.config import default_config

def get_config(arg=None):
  c = default_config()
  c.tasks = {{
      "news": {{"kind": "classification", "source": {{"format": "csv", "splits": {{
          "train": "{data}/news_train.csv", "eval": "{data}/news_dev.csv"}}}}}},
      "ner": {{"kind": "tagging", "source": {{"format": "conll", "splits": {{
          "train": "{data}/ner_train.txt", "eval": "{data}/ner_valid.txt"}}}}}},
  }}
  c.encoder.update(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
  c.tokenizer.update(path="{tokenizer}", vocab_size=200)
  c.optimizer.update(learning_rate=3e-3, warmup_steps=2)
  c.train.update(steps={steps}, batch_size=8, buckets=(32,), log_every=1, eval_every=4,
                 checkpoint_every=4, eval_batch_size=16)
  c.checkpoint.update(keep=3, best_metric="news/accuracy")
  return c
"""

# Test-only hooks for the CLI subprocesses: slow the data down (so a signal
# lands mid-run), or hang the save of one step half-way (so kill -9 lands in it).
SLOW_DATA = """
import time
from mtl_jax.training import loop
_scheduled_batches = loop.scheduled_batches
def scheduled_batches(*args):
  for batch in _scheduled_batches(*args):
    time.sleep(0.3)
    yield batch
loop.scheduled_batches = scheduled_batches
"""
HANG_SAVE = """
import asyncio, os, pathlib
from orbax.checkpoint._src.path import atomicity
_finalize = atomicity.AtomicRenameTemporaryPath.finalize
async def finalize(self):
  if self.get_final().name == os.environ["HANG_AT_STEP"]:  # written, not yet renamed
    pathlib.Path(os.environ["HANG_MARKER"]).touch()
    await asyncio.sleep(3600)
  return await _finalize(self)
atomicity.AtomicRenameTemporaryPath.finalize = finalize
"""

# SIGTERM just after the regular checkpoint of step 4 was started (a race the
# signal can win in any real run): the run stops at that checkpoint.
SIGTERM_AFTER_SAVE = """
import os, signal
from mtl_jax.training import checkpoint
_save = checkpoint.Checkpointer.save
def save(self, step, *args, **kwargs):
  _save(self, step, *args, **kwargs)
  if step == 4:
    os.kill(os.getpid(), signal.SIGTERM)
checkpoint.Checkpointer.save = save
"""


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, data_dir):
  """The tiny run's config, with a tokenizer trained once for all the runs.

  (WordPiece training numbers its vocabulary differently in each process, so
  runs that train their own tokenizer do not start from the same ids.)
  """
  root = tmp_path_factory.mktemp("config")
  path = root / "tiny.py"
  path.write_text(CONFIG.format(data=data_dir, steps=STEPS, tokenizer=""))
  tokenization.save_tokenizer(run_lib.prepare(load_config(str(path))).tokenizer,
                              root / "tokenizer")
  path.write_text(CONFIG.format(data=data_dir, steps=STEPS, tokenizer=root / "tokenizer"))
  return path


def _train(config_file, workdir, *overrides):
  argv = ["train", "--config", str(config_file), "--workdir", str(workdir), "--no-progress"]
  for override in overrides:
    argv += ["--set", override]
  return cli.main(argv)


def _start_cli(hook, config_file, workdir, *overrides, **env):
  code = hook + "\nimport sys\nfrom mtl_jax import cli\nsys.exit(cli.main(sys.argv[1:]))"
  sets = [arg for override in overrides for arg in ("--set", override)]
  return subprocess.Popen(
      [sys.executable, "-c", code, "train", "--config", str(config_file),
       "--workdir", str(workdir), "--no-progress", *sets],
      cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)


def _wait_for(condition, process, what, timeout=600):
  deadline = time.time() + timeout
  while not condition():
    if process.poll() is not None:
      pytest.fail(f"the run ended (code {process.returncode}) before {what}:\n"
                  f"{process.stderr.read()}")
    if time.time() > deadline:
      process.kill()
      pytest.fail(f"timed out waiting for {what}")
    time.sleep(0.05)


def _log(workdir):
  path = pathlib.Path(workdir) / "train_log.jsonl"
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _losses(workdir):
  """{step: loss} of the logged steps (a resumed run logs each step once)."""
  records = [r for r in _log(workdir) if "loss" in r]
  by_step = {r["step"]: r["loss"] for r in records}
  assert len(by_step) == len(records), "a step was logged twice"
  return by_step


def _params(workdir, step=None):
  run = run_lib.load(str(workdir))
  return jax.device_get(run_lib.restore_params(run, str(workdir), step))


def _assert_same_params(workdir, reference):
  jax.tree.map(np.testing.assert_array_equal, _params(workdir), _params(reference))


def _checkpoints(workdir):
  return sorted(os.listdir(pathlib.Path(workdir) / "checkpoints"))


@pytest.fixture(scope="module")
def reference(config_file, tmp_path_factory):
  """An uninterrupted run: checkpoints at 4, 8 (evaluations) and 12."""
  workdir = tmp_path_factory.mktemp("reference") / "work"
  assert _train(config_file, workdir) == 0
  return workdir


def test_the_reference_run_keeps_its_checkpoints_and_picks_the_best(reference, capsys):
  assert [c for c in _checkpoints(reference) if c.isdigit()] == ["12", "4", "8"]
  assert sorted(_losses(reference)) == list(range(1, STEPS + 1))
  evals = {r["step"]: r["eval"]["news"]["accuracy"] for r in _log(reference) if "eval" in r}
  final = json.loads((reference / "metrics.json").read_text())["news"]["accuracy"]
  accuracy = {**evals, STEPS: final}
  best = max(accuracy, key=lambda step: (accuracy[step], -step))
  capsys.readouterr()
  assert cli.main(["eval", "--workdir", str(reference), "--step", "best"]) == 0
  assert f"{accuracy[best]:.4f}" in capsys.readouterr().out


def _assert_resumes_exactly_from_step_4(uninterrupted, config_file, workdir, *overrides):
  """A copy of a finished run, cut back to its step-4 checkpoint, trained again."""
  shutil.copytree(uninterrupted, workdir)
  for name in ("8", "12"):
    shutil.rmtree(workdir / "checkpoints" / name)
  assert _train(config_file, workdir, *overrides) == 0
  assert _losses(workdir) == _losses(uninterrupted)
  _assert_same_params(workdir, uninterrupted)


def test_resuming_from_a_mid_run_checkpoint_is_exact(reference, config_file, tmp_path):
  _assert_resumes_exactly_from_step_4(reference, config_file, tmp_path / "work")


def test_a_run_on_the_real_tokens_only_resumes_exactly(config_file, tmp_path, capsys):
  """Token compaction: the capacity is a function of the batch, so the resumed steps
  run the same programs on the same buffers (dropout on)."""
  compact = ("mesh.shape.data=1", "train.token_buckets=4")
  uninterrupted = tmp_path / "uninterrupted"
  assert _train(config_file, uninterrupted, *compact) == 0
  assert "token slots (once per length bucket and capacity)" in capsys.readouterr().out
  _assert_resumes_exactly_from_step_4(uninterrupted, config_file, tmp_path / "work", *compact)


def test_sigterm_checkpoints_then_training_again_resumes_exactly(reference, config_file,
                                                                 tmp_path):
  workdir = tmp_path / "work"
  process = _start_cli(SLOW_DATA, config_file, workdir)
  _wait_for(lambda: len(_losses(workdir)) >= 2, process, "two logged steps")
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=600)
  assert process.returncode == 128 + signal.SIGTERM, stderr
  stopped_at = int(stderr.split("stopped by SIGTERM at step ")[1].split(";")[0])
  assert 2 <= stopped_at < STEPS
  assert str(stopped_at) in _checkpoints(workdir)
  assert max(_losses(workdir)) == stopped_at

  assert _train(config_file, workdir) == 0
  assert _losses(workdir) == _losses(reference)
  _assert_same_params(workdir, reference)


def test_sigterm_just_after_a_checkpoint_stops_there_and_resumes_exactly(
    reference, config_file, tmp_path):
  workdir = tmp_path / "work"
  process = _start_cli(SIGTERM_AFTER_SAVE, config_file, workdir)
  _, stderr = process.communicate(timeout=600)
  assert process.returncode == 128 + signal.SIGTERM, stderr
  assert "stopped by SIGTERM at step 4;" in stderr
  assert _checkpoints(workdir) == ["4"]

  assert _train(config_file, workdir) == 0
  assert _losses(workdir) == _losses(reference)
  _assert_same_params(workdir, reference)


def test_kill_during_a_save_keeps_the_previous_checkpoint_and_resumes_exactly(
    reference, config_file, tmp_path):
  workdir, marker = tmp_path / "work", tmp_path / "saving"
  process = _start_cli(HANG_SAVE, config_file, workdir, HANG_AT_STEP="8",
                       HANG_MARKER=str(marker))
  _wait_for(marker.exists, process, "the save of step 8")
  process.kill()  # SIGKILL, mid-save
  process.communicate(timeout=60)
  assert _checkpoints(workdir) == ["4", "8.orbax-checkpoint-tmp"]

  assert _train(config_file, workdir) == 0
  assert [c for c in _checkpoints(workdir)] == ["12", "4", "8"]
  # The log drops what the killed run logged past step 4, then the resumed run redoes it.
  assert _losses(workdir) == _losses(reference)
  _assert_same_params(workdir, reference)


def test_a_different_model_or_labels_is_a_clear_error_not_a_fresh_start(
    reference, config_file, tmp_path, capsys):
  workdir = tmp_path / "work"
  shutil.copytree(reference, workdir)
  before = _checkpoints(workdir)
  assert _train(config_file, workdir, "encoder.hidden_size=32",
                "tasks.news.labels=['World', 'Sports', 'Business', 'Sci/Tech', 'Other']"
                ) == 2
  error = capsys.readouterr().err
  assert "holds a checkpoint of a different run" in error
  assert "encoder.hidden_size: 16 -> 32" in error
  assert "tasks.json: news.labels" in error
  assert _checkpoints(workdir) == before


def test_resume_is_exact_with_the_native_kernels(config_file, tmp_path):
  """The native CPU path ("auto" on one CPU device: the MKL products, the attention and
  layer-norm kernels) resumes bit for bit too: the same blocks, the same sequential
  sgemm, parameter gradients summed in a fixed order."""
  native = ("encoder.matmul_impl='blas'", "encoder.attention_impl='cpu_kernel'",
            "encoder.norm_impl='cpu_kernel'")
  uninterrupted, resumed = tmp_path / "uninterrupted", tmp_path / "resumed"
  assert _train(config_file, uninterrupted, *native) == 0
  shutil.copytree(uninterrupted, resumed)
  for name in ("8", "12"):
    shutil.rmtree(resumed / "checkpoints" / name)
  assert _train(config_file, resumed, *native) == 0
  assert _losses(resumed) == _losses(uninterrupted)
  _assert_same_params(resumed, uninterrupted)


def test_an_implementation_choice_may_change_on_resume(reference, config_file, tmp_path):
  """attention_impl, matmul_impl and norm_impl compute the same function: a run may resume
  under others, also from run files written before matmul_impl and norm_impl existed."""
  workdir = tmp_path / "work"
  shutil.copytree(reference, workdir)
  for name in ("8", "12"):
    shutil.rmtree(workdir / "checkpoints" / name)
  for name in ("config.json", "encoder.json"):
    saved = json.loads((workdir / name).read_text())
    for key in ("matmul_impl", "norm_impl"):
      (saved.get("encoder") or saved).pop(key)
    (workdir / name).write_text(json.dumps(saved))
  assert _train(config_file, workdir, "encoder.attention_impl='cpu_kernel'",
                "encoder.matmul_impl='blas'", "encoder.norm_impl='cpu_kernel'") == 0
  resumed, uninterrupted = _losses(workdir), _losses(reference)
  assert sorted(resumed) == sorted(uninterrupted)
  np.testing.assert_allclose([resumed[s] for s in sorted(resumed)],
                             [uninterrupted[s] for s in sorted(uninterrupted)], rtol=1e-4)


RUN_FILES = ("config.json", "tasks.json", "encoder.json", "tokenizer/tokenizer.json")


def test_lost_run_files_come_back_from_the_checkpoint_and_resume_exactly(
    reference, config_file, tmp_path, capsys, caplog):
  workdir = tmp_path / "work"
  shutil.copytree(reference, workdir)
  shutil.rmtree(workdir / "checkpoints" / "12")
  for name in ("config.json", "tasks.json", "encoder.json"):
    (workdir / name).unlink()
  shutil.rmtree(workdir / "tokenizer")
  # eval reads the checkpoint's own copies, and says so.
  assert cli.main(["eval", "--workdir", str(workdir), "--step", "8"]) == 0
  assert "using the copies in checkpoint 8" in caplog.text
  assert "config.json, tasks.json, encoder.json, tokenizer/tokenizer.json" in caplog.text
  # Training again resumes from step 8 exactly and writes the files back.
  assert _train(config_file, workdir) == 0
  assert _losses(workdir) == _losses(reference)
  _assert_same_params(workdir, reference)
  for name in RUN_FILES:
    assert (workdir / name).read_text() == (reference / name).read_text(), name


def test_lost_run_files_without_a_copy_are_a_clear_error(reference, tmp_path):
  workdir = tmp_path / "work"
  shutil.copytree(reference, workdir)
  shutil.rmtree(workdir / "tokenizer")
  shutil.rmtree(workdir / "checkpoints" / "12" / "run_files")  # as before the copies
  with pytest.raises(FileNotFoundError, match=r"tokenizer/tokenizer.json missing, and "
                     r"checkpoint 12 holds no copy .* its checkpoints cannot be read"):
    run_lib.load(str(workdir))


def test_a_corrupt_checkpoint_is_a_clear_error_not_a_fresh_start(reference, config_file,
                                                                 tmp_path, capsys):
  workdir = tmp_path / "work"
  shutil.copytree(reference, workdir)
  for path in (workdir / "checkpoints" / "12" / "state").rglob("*"):
    if path.is_file():
      path.write_bytes(b"\0" * 8)
  log_before = (workdir / "train_log.jsonl").read_text()
  assert _train(config_file, workdir, "train.steps=16") == 2
  error = capsys.readouterr().err
  assert "checkpoints/12: cannot restore this checkpoint: it is corrupt" in error
  assert "to resume from step 8" in error
  assert _checkpoints(workdir) == ["12", "4", "8"]
  assert (workdir / "train_log.jsonl").read_text() == log_before


def _with_nan_at(monkeypatch, bad_steps):
  """Feeds batches that make the loss NaN at `bad_steps` (1-based)."""
  from mtl_jax.training import loop
  scheduled_batches = loop.scheduled_batches

  def with_nan(streams, schedule, first_step):
    for step, batch in enumerate(scheduled_batches(streams, schedule, first_step), start=1):
      if step in bad_steps:
        # A token id past the vocabulary: the embedding lookup gives NaN.
        batch["news"]["input_ids"][0, 1] = 10**6
      yield batch

  monkeypatch.setattr(loop, "scheduled_batches", with_nan)


def test_nonfinite_steps_are_skipped_counted_and_a_streak_stops_the_run(
    config_file, tmp_path, monkeypatch, capsys):
  _with_nan_at(monkeypatch, {3, 6, 7, 8})
  workdir = tmp_path / "work"
  assert _train(config_file, workdir, "train.max_nonfinite_in_a_row=3") == 2
  error = capsys.readouterr().err
  assert "steps 6-8: 3 steps in a row had a non-finite loss" in error
  assert "The last checkpoint (step 4) is kept." in error
  records = {r["step"]: r for r in _log(workdir) if "loss" in r}
  assert records[3]["skipped"] and records[3]["loss"] is None
  assert records[3]["nonfinite_total"] == 1
  assert not records[4]["skipped"] and records[4]["loss"] is not None
  assert records[7]["nonfinite_total"] == 3
  # The last checkpoint is the last good one (step 4); nothing after it is saved.
  assert _checkpoints(workdir) == ["4"]
  params = _params(workdir)
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params))


def test_a_streak_between_logs_stops_the_run_exactly_as_if_each_step_were_read(
    config_file, tmp_path, monkeypatch, capsys):
  # The host reads the device's counts only when it logs, evaluates or checkpoints:
  # a streak (steps 5-7) that ends between two of those still stops the run at
  # the next one, reporting that streak, and nothing after its start is saved.
  _with_nan_at(monkeypatch, {5, 6, 7, 9})
  from mtl_jax.training.nonfinite import NonFiniteCounter
  reads, check = [], NonFiniteCounter.check
  monkeypatch.setattr(NonFiniteCounter, "check", lambda self: reads.append(1) or check(self))
  workdir = tmp_path / "work"
  assert _train(config_file, workdir, "train.max_nonfinite_in_a_row=3",
                "train.log_every=12", "train.eval_every=0", "checkpoint.best_metric=") == 2
  error = capsys.readouterr().err
  assert "steps 5-7: 3 steps in a row had a non-finite loss" in error
  assert "(3 in all)" in error and "The last checkpoint (step 4) is kept." in error
  assert _checkpoints(workdir) == ["4"]
  assert not [r for r in _log(workdir) if "loss" in r]  # no log was due before the stop
  assert len(reads) <= 4  # at the checkpoints of steps 4 and 8, not once per step


def test_a_nonfinite_stop_before_any_checkpoint_says_so(config_file, tmp_path, monkeypatch,
                                                        capsys):
  _with_nan_at(monkeypatch, {1, 2, 3})
  assert _train(config_file, tmp_path / "work", "train.max_nonfinite_in_a_row=3") == 2
  error = capsys.readouterr().err
  assert "steps 1-3: 3 steps in a row" in error
  assert "No checkpoint was written before the stop." in error


def test_two_hosts_train_like_one(config_file, tmp_path):
  """Two processes of 4 devices each (jax.distributed over localhost) = one of 8.

  The hosts train their tokenizer (host 0's, shared), each puts its half of
  every batch on its devices, and host 0 alone writes logs and metrics.
  """
  with socket.socket() as free:
    free.bind(("localhost", 0))
    port = free.getsockname()[1]
  workdir = tmp_path / "two_hosts"
  xla_flags = os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=4")
  processes = [_start_cli("", config_file, workdir, "tokenizer.path=", XLA_FLAGS=xla_flags,
                          JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                          JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i))
               for i in range(2)]
  outputs = [process.communicate(timeout=900) for process in processes]
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr
  assert "accuracy" in outputs[0][0] and "accuracy" not in outputs[1][0]  # one report
  assert [c for c in _checkpoints(workdir)] == ["12", "4", "8"]

  one_host = tmp_path / "one_host"
  assert _train(config_file, one_host, f"tokenizer.path={workdir / 'tokenizer'}") == 0
  losses, expected = _losses(workdir), _losses(one_host)  # each step logged once
  assert sorted(losses) == sorted(expected) == list(range(1, STEPS + 1))
  np.testing.assert_allclose([losses[s] for s in sorted(losses)],
                             [expected[s] for s in sorted(expected)], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
               _params(workdir), _params(one_host))


def test_the_train_log_keeps_its_records_when_its_file_is_replaced(tmp_path):
  from mtl_jax.training import loop
  path = tmp_path / "train_log.jsonl"
  log = loop.TrainLog(str(path))
  log.write({"step": 1})
  # What `git stash` and `git stash pop` do to a committed log while a run writes it: a
  # new file in its place. A file held open would send step 2 to the deleted one.
  shutil.copy(path, tmp_path / "copy")
  os.replace(tmp_path / "copy", path)
  log.write({"step": 2})
  assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]

"""One trainer per workdir: a second run is refused, naming the holder; the lock dies with it."""

import os
import signal
import subprocess
import sys
import time

import pytest

from mtl_jax import cli
from mtl_jax.training.lock import WorkdirBusy, workdir_lock

HOLDER = """
import sys, time
from mtl_jax.training.lock import workdir_lock
with workdir_lock(sys.argv[1]):
  print("held", flush=True)
  time.sleep(120)
"""


@pytest.fixture
def held(tmp_path):
  """Another process holding `tmp_path/work`'s lock."""
  workdir = tmp_path / "work"
  process = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)],
                             stdout=subprocess.PIPE, text=True)
  assert process.stdout.readline().strip() == "held"
  yield workdir, process
  process.kill()
  process.wait()


def _config(tmp_path, data_dir):
  """A valid tiny config file (so only the lock or the disk can stop it)."""
  config = tmp_path / "c.py"
  config.write_text(f"""
from mtl_jax.config import default_config
def get_config(arg=None):
  c = default_config()
  c.tasks = {{"news": {{"kind": "classification", "source": {{"format": "csv", "splits": {{
      "train": "{data_dir}/news_train.csv"}}}}}}}}
  c.encoder.update(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
  c.tokenizer.vocab_size = 100
  return c
""")
  return config


def test_a_second_trainer_is_refused_and_names_the_holder(held, tmp_path, capsys, data_dir):
  workdir, process = held
  config = _config(tmp_path, data_dir)
  assert cli.main(["train", "--config", str(config), "--workdir", str(workdir)]) == 2
  error = capsys.readouterr().err
  assert f"is in use by another run (host {os.uname().nodename} pid {process.pid})" in error
  assert sorted(os.listdir(workdir)) == [".lock"]  # nothing of the refused run written


def test_the_lock_goes_with_its_process_even_on_kill(held):
  workdir, process = held
  with pytest.raises(WorkdirBusy):
    with workdir_lock(str(workdir)):
      pass
  process.send_signal(signal.SIGKILL)
  process.wait()
  deadline = time.time() + 10
  while True:  # the kernel releases the lock with the process
    try:
      with workdir_lock(str(workdir)):
        break
    except WorkdirBusy:
      assert time.time() < deadline
      time.sleep(0.05)


def test_a_full_disk_at_the_start_is_one_clear_error(tmp_path, capsys, monkeypatch, data_dir):
  import errno

  from mtl_jax.training import run as run_lib

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "w" / "config.json"))

  monkeypatch.setattr(run_lib, "save", full)
  config = _config(tmp_path, data_dir)
  assert cli.main(["train", "--config", str(config), "--workdir", str(tmp_path / "w")]) == 2
  assert "mtl-jax: error: [Errno 28] No space left on device" in capsys.readouterr().err

"""benchmarks/padding.py: the count on batches with known masks, and a run on a tiny config."""

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import padding  # noqa: E402

from helpers import COMPARE_CONFIG  # noqa: E402


def _batch(lengths, length):
  mask = np.zeros((len(lengths), length), np.int32)
  for row, n in enumerate(lengths):
    mask[row, :n] = 1
  return {"attention_mask": mask}


def test_count_sums_real_tokens_slots_and_each_tasks_own_bucket():
  steps = [  # two steps of two tasks, each padded to the step's longest bucket
      {"a": _batch([3, 5], 16), "b": _batch([12, 2], 16)},  # b's bucket 16, a's 8
      {"a": _batch([30, 1], 32), "b": _batch([4, 0], 32)},  # a's bucket 32, b's 8
  ]
  totals = padding.count(steps, buckets=(8, 16, 32))
  assert totals["steps"] == 2
  assert totals["per_task"]["a"] == {"real": 39, "slots": 96, "own_slots": 2 * 8 + 2 * 32}
  assert totals["per_task"]["b"] == {"real": 18, "slots": 96, "own_slots": 2 * 16 + 2 * 8}
  assert (totals["real"], totals["slots"], totals["own_slots"]) == (57, 192, 128)
  # token_buckets=8: 22 real of 64 slots -> 24 rows (eighths of 8); 35 of 128 -> 48.
  assert totals["capacity"] == 24 + 48
  assert totals["programs"] == [(16, 24), (32, 48)]


def test_a_run_over_a_config_prints_the_table(tmp_path, data_dir, capsys):
  config = tmp_path / "tiny.py"
  config.write_text(COMPARE_CONFIG.format(data=data_dir))
  assert padding.main(["--config", str(config), "--steps", "3", "--json",
                       str(tmp_path / "out.json")]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[1].split()[:3] == ["task", "real/step", "slots/step"]
  assert [line.split()[0] for line in lines[2:5]] == ["ner", "news", "all"]
  # One bucket (32): each task's own length is the step's.
  assert lines[-2].startswith("slots per step at each task's own length: 1.000")
  assert lines[-1].startswith("token_buckets=8: compact rows ")

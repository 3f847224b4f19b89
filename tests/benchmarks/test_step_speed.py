"""benchmarks/step_speed.py's stolen-time share, on /proc/stat counters whose answer is known."""

import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import step_speed  # noqa: E402


def test_the_steal_share_is_stolen_time_over_all_cpu_time_between_two_readings():
  # user nice system idle iowait irq softirq steal guest guest_nice
  before = [100, 0, 10, 50, 0, 0, 0, 5, 7, 0]
  after = [160, 0, 20, 70, 0, 0, 0, 15, 9, 0]
  # 100 ticks passed (60 + 10 + 20 + 10), 10 of them stolen; guest time is inside user.
  assert step_speed.steal_share(before, after) == 0.1
  assert step_speed.steal_share(None, after) is None
  assert step_speed.steal_share(before, before) == 0.0


def test_this_machines_counters_are_read_and_advance():
  import pytest
  before = step_speed.cpu_times()
  if before is None:
    pytest.skip("no /proc/stat (not Linux): the runs omit the share")
  deadline = time.monotonic() + 0.1
  while time.monotonic() < deadline:  # 0.1 s of work: at least a few 10 ms ticks
    pass
  after = step_speed.cpu_times()
  assert len(before) >= 8 and sum(after[:8]) > sum(before[:8])

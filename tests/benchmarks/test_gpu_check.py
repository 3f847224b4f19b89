"""The GPU check's dry run: every part on tiny shapes on this CPU, so it cannot rot unseen."""

import json
import pathlib
import subprocess
import sys

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_gpu_check_runs_every_part_and_writes_its_tables(tmp_path):
  done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), "--out",
                         str(tmp_path), "--dry-run"], capture_output=True, text=True,
                        timeout=900)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  report = json.loads((tmp_path / "gpu_check.json").read_text())
  for dtype in ("float32", "bfloat16"):
    rows = report["step"][dtype]["rows"]
    assert set(rows) == {"ours dropout 0.1", "ours dropout 0"}, rows
    assert all(len(row["step_s"]) == 2 and min(row["step_s"]) > 0 for row in rows.values())
    # The host's stolen share, one per round (None off Linux, where /proc/stat is absent).
    assert all(len(row["steal"]) == 2 for row in rows.values()), rows
  assert {row["tasks"] for row in report["balancing"]} == {2}
  assert [row["method"] for row in report["balancing"]].count("pcgrad") == 1
  assert report["sharded"]["1"]["examples_per_step"] == 4
  markdown = (tmp_path / "gpu_check.md").read_text()
  assert "| bfloat16 | ours dropout 0.1 |" in markdown and "| 1 |" in markdown

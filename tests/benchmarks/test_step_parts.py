"""benchmarks/step_parts.py on tiny shapes, so it cannot rot unseen."""

import pathlib
import subprocess
import sys

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_step_parts_benchmark_times_every_part_on_tiny_shapes():
  done = subprocess.run([sys.executable, str(BENCHMARKS / "step_parts.py"), "--tiny",
                         "--attention-impl", "xla", "--dropouts", "0", "--repeats", "1"],
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  line = [l for l in done.stdout.splitlines() if l.startswith("xla")][0]
  for part in ("forward", "forward + backward", "optimizer.update", "whole step"):
    assert f"{part} " in line, line

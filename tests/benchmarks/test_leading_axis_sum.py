"""benchmarks/leading_axis_sum.py on a small array: both leading-axis sums give the same numbers."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import leading_axis_sum  # noqa: E402


def test_a_small_run_times_three_sums_and_the_two_agree():
  result = leading_axis_sum.main(["--shape", "4", "3", "8", "--repeats", "2"])
  assert {"reduce over axis 0", "ones @ g (a product)", "reduce over axes 0, 1"} <= set(result)
  assert result["max_difference"] < 1e-5

"""benchmarks/torch_step_profile.py on a tiny encoder: the ops of a real PyTorch step, per step."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))


def test_a_tiny_profile_names_the_steps_ops():
  pytest.importorskip("torch", reason="the PyTorch reference is optional (CI installs none)")
  import torch_step_profile
  result = torch_step_profile.main(["--tiny", "--batch-per-task", "2", "--length", "16",
                                    "--steps", "2", "--dropout", "0"])
  ops = result["per_op_s"]
  # The reference's step: products, the fused optimizer, the attention kernel.
  assert {"aten::mm", "aten::_fused_adamw_"} <= set(ops)
  assert any("scaled_dot_product" in name for name in ops)

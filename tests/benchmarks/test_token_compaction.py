"""benchmarks/token_compaction.py on a tiny config: both steps run, the last line is the ratio."""

import json
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import token_compaction  # noqa: E402

from helpers import COMPARE_CONFIG  # noqa: E402


def test_a_run_times_both_steps_in_alternating_rounds(tmp_path, data_dir, capsys):
  config = tmp_path / "tiny.py"
  config.write_text(COMPARE_CONFIG.format(data=data_dir))
  out = tmp_path / "out.json"
  assert token_compaction.main(["--config", str(config), "--steps", "2", "--rounds", "2",
                                "--token-buckets", "4", "--set", "mesh.shape.data=1",
                                "--json", str(out)]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[-1].startswith("ratio compact ")
  result = json.loads(out.read_text())
  assert [list(r) for r in result["rounds"]] == [["padded", "compact"], ["compact", "padded"]]
  assert result["real_share"] <= result["capacity_share"] < 1.0  # fewer rows than slots
  assert float(lines[-1].split()[-1]) == pytest.approx(np.median(result["ratios"]), abs=5e-4)


def test_the_evaluation_mode_times_both_evaluations_and_they_score_alike(tmp_path, data_dir,
                                                                        capsys):
  config = tmp_path / "tiny.py"
  config.write_text(COMPARE_CONFIG.format(data=data_dir))
  out = tmp_path / "out.json"
  assert token_compaction.main(["--config", str(config), "--evaluation", "--rounds", "2",
                                "--token-buckets", "4", "--set", "mesh.shape.data=1",
                                "--json", str(out)]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[-1].startswith("ratio compact ")
  scores = {line.split(":")[0]: line.split(": ", 1)[1] for line in lines
            if line.startswith(("padded: ", "compact: "))}
  assert scores["padded"] == scores["compact"]  # the same predictions, the same metrics
  result = json.loads(out.read_text())
  assert [list(r) for r in result["rounds"]] == [["padded", "compact"], ["compact", "padded"]]
  assert result["examples"] > 0 and 0 < result["real_share"] < 1.0

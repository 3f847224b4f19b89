"""benchmarks/compile_cache.py on a tiny config: the warm process reads what the cold one wrote."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import compile_cache  # noqa: E402

from helpers import COMPARE_CONFIG  # noqa: E402


def test_the_second_process_loads_every_program_the_first_compiled(tmp_path, data_dir, capsys,
                                                                   monkeypatch):
  config = tmp_path / "tiny.py"
  config.write_text(COMPARE_CONFIG.format(data=data_dir))
  # The tiny programs compile in well under JAX's 1 s threshold for caching.
  monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  out = tmp_path / "out.json"
  assert compile_cache.main(["--config", str(config), "--steps", "3", "--rounds", "1",
                             "--set", "train.token_buckets=2", "--json", str(out)]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[-1].startswith("ratio warm ")
  (row,) = json.loads(out.read_text())["rounds"]
  programs = len(row["cold"]["programs"])
  assert programs >= 1 and list(row["warm"]["programs"]) == list(row["cold"]["programs"])
  assert row["cold"]["cache_hits"] == 0
  assert row["warm"]["cache_hits"] >= programs  # every step program came from the cache
  ratio = row["warm"]["seconds"] / row["cold"]["seconds"]
  assert float(lines[-1].split()[-1]) == pytest.approx(ratio, abs=5e-4)

"""benchmarks/gemm_backends.py: each XLA row runs the library it names, on tiny shapes."""

import json
import pathlib
import subprocess
import sys

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def test_each_xla_row_routes_the_products_to_the_library_it_names(tmp_path):
  out = tmp_path / "gemm.json"
  done = subprocess.run([sys.executable, str(BENCHMARKS / "gemm_backends.py"), "--rounds", "1",
                         "--repeats", "1", "--rows", "64", "--d", "32", "--ff", "64",
                         "--json", str(out)], capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  results = json.loads(out.read_text())["results"]
  # 4 products x (forward, input gradient, weight gradient) = 12 dots per row.
  assert results["xla-onednn"][0]["libraries"] == {"onednn": 12}
  assert results["xla-eigen"][0]["libraries"] == {"eigen": 12}
  default = results["xla"][0]["libraries"]
  assert sum(default.values()) == 12 and default.get("ynn", 0) > 0, default
  # Ours: the twelve products as BLAS custom calls (MKL where the extra is installed).
  (ours,) = results["mtl-gemm"][0]["libraries"].items()
  assert ours[0] in ("mtl_gemm (mkl)", "mtl_gemm (openblas)") and ours[1] == 12, ours
  assert results["mtl-gemm-openblas"][0]["libraries"] == {"mtl_gemm (openblas)": 12}
  # torch is optional (CI has none): then a line saying so comes before the table.
  assert any(line.startswith("one layer's 12 products") for line in done.stdout.splitlines())

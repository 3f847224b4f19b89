"""experiments/notebooks/quickstart.ipynb runs top to bottom, offline, on the demo data."""

import os
import pathlib
import shutil

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "experiments" / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
  shutil.copy(NOTEBOOK, tmp_path)
  # The kernel imports this checkout's mtl_jax (not another installed copy) and
  # inherits conftest's JAX settings (compilation cache, fast CPU compiles).
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
  # One CPU device, as a notebook user has (conftest emulates 8 for the sharding tests).
  monkeypatch.setenv("XLA_FLAGS", " ".join(
      flag for flag in os.environ.get("XLA_FLAGS", "").split()
      if not flag.startswith("--xla_force_host_platform_device_count")))
  notebook = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
  NotebookClient(notebook, timeout=240, kernel_name="python3",
                 resources={"metadata": {"path": str(tmp_path)}}).execute()
  outputs = {i: cell.get("outputs", []) for i, cell in enumerate(notebook.cells)
             if cell.cell_type == "code"}
  text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                 for cell_outputs in outputs.values() for o in cell_outputs)
  assert "accuracy" in text and "span_f1" in text  # the evaluation
  assert "[['B-" in text or "[['O'" in text  # a tag per word of the NER prediction
  images = [o for cell_outputs in outputs.values() for o in cell_outputs
            if "image/png" in o.get("data", {})]
  assert len(images) == 3
  assert list(tmp_path.iterdir()) == [tmp_path / NOTEBOOK.name]  # wrote nothing beside it

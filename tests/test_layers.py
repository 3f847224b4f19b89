"""The package's layering, read from the modules' imports (not from running them).

The data layer (`tasks/`) never imports the model layer (`heads/`,
`encoders/`, `sharing/`), nor the other way round; the leaf modules import
nothing of the package.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "mtl_jax"
MODEL = ("heads", "encoders", "sharing")
# Folders (or modules) -> the top-level parts of mtl_jax they must not import.
RULES = {
    "tasks": MODEL + ("weighting", "training", "sharding", "relatedness", "kernels"),
    "heads": ("tasks", "training", "weighting"),
    "encoders": ("tasks", "training", "weighting", "sharing", "heads"),
    "sharing": ("tasks", "training", "weighting"),
    "registry.py": ("*",),
    "specs.py": ("*",),
    "constants.py": ("*",),
    "promotion.py": ("*",),
}


def imported_parts(path: pathlib.Path) -> set[str]:
  """The top-level parts of mtl_jax a module imports (anywhere in it, functions too)."""
  parts = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    else:
      continue
    for name in names:
      pieces = name.split(".")
      if pieces[0] == "mtl_jax" and len(pieces) > 1:
        parts.add(pieces[1])
  return parts


def modules(where: str) -> list[pathlib.Path]:
  target = PACKAGE / where
  return sorted(target.rglob("*.py")) if target.is_dir() else [target]


@pytest.mark.parametrize("where", sorted(RULES))
def test_layer_imports_only_what_it_may(where):
  forbidden = RULES[where]
  own = where.removesuffix(".py")
  for path in modules(where):
    parts = imported_parts(path) - {own}
    bad = sorted(parts) if forbidden == ("*",) else sorted(parts & set(forbidden))
    assert not bad, f"{path.relative_to(PACKAGE.parent)} imports mtl_jax.{bad}"


def test_the_reader_sees_imports_inside_functions(tmp_path):
  """The check would catch the import a function hides (as the old export did)."""
  module = tmp_path / "m.py"
  module.write_text("def f():\n  from mtl_jax.tasks.tokenization import save_tokenizer\n"
                    "import mtl_jax.heads\nfrom mtl_jax import sharing\n")
  assert imported_parts(module) == {"tasks", "heads", "sharing"}


def test_starting_the_cli_leaves_the_scoring_libraries_unimported():
  # scikit-learn, SciPy and seqeval take about a second to import; every mtl-jax
  # process started (predict, a subprocess of compare) would pay it, while only
  # scoring needs them (mtl_jax/metrics imports them there).
  import subprocess
  import sys

  heavy = ("sklearn", "scipy", "seqeval")
  code = ("import sys, mtl_jax.cli, mtl_jax.training.loop, mtl_jax.predict; "
          f"print([m for m in {heavy!r} if m in sys.modules])")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=300)
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip() == "[]", done.stdout

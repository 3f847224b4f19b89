"""The table of every config key, its default and what it does, from `default_config()`.

The defaults come from `default_config()` itself and each key's line from the
comments beside it in `config.py` (the comment lines above a key, or the one
after it), so the README's table is generated, never written by hand:

    python -m mtl_jax.config_docs            # print the table
    python -m mtl_jax.config_docs --write    # rewrite it in README.md

`tests/test_config_docs.py` fails when the README's table and the code differ.
"""

from __future__ import annotations

import argparse
import inspect
import pathlib
import re

from mtl_jax import config as config_lib

BEGIN, END = "<!-- config-table: begin -->", "<!-- config-table: end -->"
_SECTION = re.compile(r"^  config\.(\w+) = (?:dict\(|ml_collections)")
_TOP = re.compile(r"^  config\.(\w+) = (.+?)\s*(?:#\s*(.*))?$")
_KEY = re.compile(r"^\s{6}(\w+)=(.*?)(?:\s*#\s*(.*))?$")


def descriptions() -> dict[str, str]:
  """{'section.key' or 'key': its comment} from `default_config`'s source."""
  found, section, pending = {}, None, []
  for line in inspect.getsource(config_lib.default_config).splitlines():
    stripped = line.strip()
    if stripped.startswith("#"):
      pending.append(stripped.lstrip("# ").rstrip())
      continue
    match = _SECTION.match(line)
    if match:
      section = match.group(1)
      if pending:
        found[section] = " ".join(pending)
      pending = []
      continue
    match = _TOP.match(line)
    if match and not line.rstrip().endswith("("):
      section = None
      found[match.group(1)] = " ".join(pending + [match.group(3) or ""]).strip()
      pending = []
      continue
    match = _KEY.match(line)
    if match and section:
      found[f"{section}.{match.group(1)}"] = " ".join(pending + [match.group(3) or ""]).strip()
      pending = []
      continue
    if stripped == ")":
      section = None
    pending = [] if not stripped.startswith("#") else pending
  return found


def _flat(config, prefix=""):
  for key, value in config.items():
    name = prefix + key
    if hasattr(value, "items") and name != "tasks" and "." not in name:
      yield from _flat(value, name + ".")
    else:
      yield name, value


def key_table() -> str:
  """The markdown table: key, default, description."""
  notes = descriptions()
  rows = ["| key | default | what it does |", "| --- | --- | --- |"]
  for name, value in _flat(config_lib.default_config()):
    shown = value.to_dict() if hasattr(value, "to_dict") else value
    text = repr(shown).replace("|", "\\|")
    if len(text) > 60:
      text = text[:57] + "..."
    note = notes.get(name, "").replace("|", "\\|")
    rows.append(f"| `{name}` | `{text}` | {note} |")
  return "\n".join(rows)


def readme_section(readme: str) -> str:
  """The table between the markers of a README's text."""
  start, stop = readme.index(BEGIN) + len(BEGIN), readme.index(END)
  return readme[start:stop].strip()


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--write", action="store_true", help="rewrite the table in README.md")
  args = parser.parse_args(argv)
  table = key_table()
  if not args.write:
    print(table)
    return
  path = pathlib.Path(__file__).resolve().parents[1] / "README.md"
  text = path.read_text()
  start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
  path.write_text(text[:start] + "\n" + table + "\n" + text[stop:])


if __name__ == "__main__":
  main()

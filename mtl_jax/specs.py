"""Config strings that name a thing and its options: 'name' or 'name(key=value, ...)'.

Balancing methods (`"cagrad(c=0.4)"`), schedules (`"temperature(temperature=2.0)"`)
and mixtures (`"glue_small(data_dir='...')"`) are all written so. A leaf
module, used by the data and the model layer alike.
"""

from __future__ import annotations

import ast
from typing import Any


def parse_spec(spec: str, what: str = "spec") -> tuple[str, dict[str, Any]]:
  """Splits 'name(key=value, ...)' into the name and literal keyword arguments.

  Args:
    spec: the config string.
    what: the config value it is, for error messages (e.g. 'schedule').

  Returns:
    (name, {key: value}); values are Python literals.

  Raises:
    ValueError: the string is not of that form, or a value is not a literal.
  """
  if not isinstance(spec, str):
    raise ValueError(f"{what} must be a string like 'name' or 'name(key=value, ...)', "
                     f"got {spec!r}")
  try:
    call = ast.parse(spec.strip(), mode="eval").body
  except SyntaxError as error:
    raise ValueError(f"cannot parse {what} {spec!r}: {error.msg}") from None
  if isinstance(call, ast.Name):
    return call.id, {}
  if (not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name)
      or call.args):
    raise ValueError(f"{what} {spec!r} must look like "
                     "'name' or 'name(key=value, ...)'")
  try:
    kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
  except ValueError:
    raise ValueError(f"{what} {spec!r}: arguments must be literals") from None
  return call.func.id, kwargs

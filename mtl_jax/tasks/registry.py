"""Named factories (of tasks, of mixtures), looked up with suggestions for typos."""

from __future__ import annotations

import difflib
from typing import Any, Callable, ClassVar


class Registry:
  """Factories by name: `add(name, factory)`, `get(name, **options)`, `names()`.

  Each subclass has its own table and says what it holds (`what`).
  """

  what: ClassVar[str] = "entry"
  _factories: ClassVar[dict[str, Callable[..., Any]]]

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    cls._factories = {}

  @classmethod
  def add(cls, name: str, factory: Callable[..., Any]) -> None:
    """Registers `factory(**options)` under `name`."""
    if name in cls._factories:
      raise ValueError(f"{cls.what} {name!r} is already registered")
    cls._factories[name] = factory

  @classmethod
  def get(cls, name: str, **options) -> Any:
    """What the factory `name` builds from `options`.

    Raises:
      KeyError: no such name (with the closest registered one).
    """
    if name not in cls._factories:
      close = difflib.get_close_matches(name, cls._factories, n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      raise KeyError(f"no registered {cls.what} {name!r}{hint}")
    return cls._factories[name](**options)

  @classmethod
  def names(cls) -> list[str]:
    return sorted(cls._factories)

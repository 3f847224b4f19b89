"""Named entries of one sort (balancing methods, sharing kinds, task kinds, source
formats, tasks, mixtures), one class for all of them.

A leaf module: it imports nothing of the package, so the data layer and the
model layer can both use it.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
_MISSING = object()


class UnknownNameError(KeyError, ValueError):
  """A name no entry of a registry has (a KeyError and a ValueError, for either habit)."""

  def __str__(self) -> str:  # KeyError's would quote the message
    return str(self.args[0])


class Registry(Generic[T]):
  """Entries by name: duplicates rejected, unknown names answered with the closest.

      METHODS = Registry("balancing method")

      @METHODS.register("equal")
      def equal(): ...

      METHODS["equal"]          # the entry
      METHODS.get("equal")      # the entry called: equal()
      METHODS.names()           # sorted names

  Args:
    what: what the entries are, for error messages ("task kind").
  """

  def __init__(self, what: str):
    self.what = what
    self._entries: dict[str, T] = {}

  def register(self, name: str, entry: Any = _MISSING):
    """Adds `entry` under `name`; without `entry`, a decorator that adds what it decorates.

    Raises:
      ValueError: `name` is already registered.
    """
    if entry is _MISSING:
      def decorator(value: T) -> T:
        self.register(name, value)
        return value
      return decorator
    if name in self._entries:
      raise ValueError(f"{self.what} {name!r} is already registered")
    self._entries[name] = entry
    return entry

  def __getitem__(self, name: str) -> T:
    """The entry `name`.

    Raises:
      UnknownNameError: no such entry (the message names the closest ones and
        every known name).
    """
    if name not in self._entries:
      raise UnknownNameError(self.unknown(name))
    return self._entries[name]

  def get(self, name: str, **options) -> Any:
    """The entry `name` (a factory) called with `options`."""
    factory: Callable[..., Any] = self[name]  # type: ignore[assignment]
    return factory(**options)

  def unknown(self, name: str) -> str:
    """The message for an unknown `name`."""
    close = difflib.get_close_matches(str(name), self._entries, n=3)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    return f"unknown {self.what} {name!r}{hint}; known: {', '.join(self.names()) or 'none'}"

  def names(self) -> list[str]:
    """The registered names, sorted."""
    return sorted(self._entries)

  def items(self) -> list[tuple[str, T]]:
    return [(name, self._entries[name]) for name in self.names()]

  def __contains__(self, name: object) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())

  def __len__(self) -> int:
    return len(self._entries)

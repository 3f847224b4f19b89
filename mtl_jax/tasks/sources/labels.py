"""Class-label features (HF `ClassLabel`, TFDS `ClassLabel`) as label strings.

Hub and TFDS datasets store classes as integers with a names table. Tasks
use label strings, so the integers become either the class names
(`class_labels='names'`: 'entailment') or the integers as text
(`class_labels='ids'`: '0', matching GLUE's TSV files where labels are
digits).
"""

from __future__ import annotations

from typing import Sequence

from mtl_jax.tasks.sources.base import DataError

CLASS_LABEL_MODES = ("names", "ids")


def check_mode(mode: str, where: str) -> str:
  if mode not in CLASS_LABEL_MODES:
    raise DataError(f"{where}: options.class_labels must be one of {CLASS_LABEL_MODES}, "
                    f"got {mode!r}")
  return mode


def class_label_string(value: int, names: Sequence[str], mode: str, where: str) -> str:
  """One class id as its label string; an id out of range is an error at `where`."""
  value = int(value)
  if not 0 <= value < len(names):
    raise DataError(f"{where}: label {value} is not one of the {len(names)} classes "
                    f"{list(names)} (an unlabelled test split has -1)")
  return names[value] if mode == "names" else str(value)

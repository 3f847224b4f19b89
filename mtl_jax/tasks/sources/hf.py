"""Hugging Face `datasets`: a hub dataset by name, or the same data from local files.

    Source("hf", {"train": "train", "eval": "validation"},
           columns={"text": "sentence1", "text_pair": "sentence2"},
           options={"path": "nyu-mll/glue", "name": "rte"})

`options.path` is what `datasets.load_dataset` takes: a hub name (online), a
local folder of data files (a downloaded hub repo, say), or a builder name
('parquet', 'json', 'csv') with `data_files`; every other option is passed
to `load_dataset`. A folder written by `Dataset(Dict).save_to_disk` is read
with `datasets.load_from_disk`. Nothing global is set: when the hub cannot
be reached the error says so and suggests local files.
"""

from __future__ import annotations

import os
from typing import Any

import datasets

from mtl_jax.tasks.sources.base import (LINE, DataError, RawSplit, Source,
                                        check_not_empty, register_reader,
                                        select_fields)
from mtl_jax.tasks.sources.labels import check_mode, class_label_string


@register_reader("hf")
def read_hf(source: Source, split: str, fields: tuple[str, ...]) -> RawSplit:
  """One split of a `datasets` dataset; class labels become label strings."""
  options = dict(source.options)
  mode = options.pop("class_labels", "names")
  path = options.pop("path", None)
  if not path:
    raise DataError(f"hf source: options.path is required (a hub name such as "
                    f"'nyu-mll/glue', or a local folder); options: {dict(source.options)}")
  path = str(path)
  where = f"hf:{path}" + (f"/{options['name']}" if options.get("name") else "") + f"[{split}]"
  check_mode(mode, where)
  dataset = _load(path, split, options, where)
  dataset = dataset.add_column(LINE, list(range(1, len(dataset) + 1)))
  dataset = select_fields(dataset, source, where, fields)
  dataset = _class_labels_as_strings(dataset, mode, where)
  return check_not_empty(RawSplit(dataset, where, unit="row"), fields, source.skip_bad_rows)


def _load(path: str, split: str, options: dict[str, Any], where: str) -> datasets.Dataset:
  local = os.path.expanduser(path)
  if os.path.exists(os.path.join(local, datasets.config.DATASETDICT_JSON_FILENAME)):
    saved = datasets.load_from_disk(local)
    if split not in saved:
      raise DataError(f"{where}: no split {split!r}; the saved dataset has "
                      f"{list(saved)}")
    return saved[split]
  try:
    return datasets.load_dataset(local if os.path.isdir(local) else path, split=split,
                                 **options)
  except ConnectionError as error:
    name = f", {options['name']!r}" if options.get("name") else ""
    raise DataError(
        f"{where}: cannot reach the Hugging Face hub to load {path!r} ({error}). "
        "Without a connection, load it from local files: where there is one, run "
        f"`datasets.load_dataset({path!r}{name}).save_to_disk(DIR)` (or download the hub "
        "repo's data files), then set the source's options.path to that folder; or "
        "use format 'parquet', 'csv' or 'jsonl' with the files.") from error
  except (FileNotFoundError, ValueError) as error:
    raise DataError(f"{where}: cannot load: {error}") from error


def _class_labels_as_strings(dataset: datasets.Dataset, mode: str, where: str
                             ) -> datasets.Dataset:
  """ClassLabel columns (and lists of ClassLabel) -> label strings."""
  converters = {}
  for column, feature in dataset.features.items():
    if isinstance(feature, datasets.ClassLabel):
      converters[column] = (feature.names, False)
    elif isinstance(getattr(feature, "feature", None), datasets.ClassLabel):
      converters[column] = (feature.feature.names, True)
  if not converters:
    return dataset

  def convert(batch):
    out = {}
    for column, (names, is_list) in converters.items():
      values = []
      for value, row in zip(batch[column], batch[LINE]):
        at = f"{where}: row {row}"
        values.append([class_label_string(v, names, mode, at) for v in value] if is_list
                      else class_label_string(value, names, mode, at))
      out[column] = values
    return out

  features = dataset.features.copy()
  for column, (_, is_list) in converters.items():
    features[column] = (datasets.List(datasets.Value("string")) if is_list
                        else datasets.Value("string"))
  return dataset.map(convert, batched=True, features=features,
                     desc="class labels to strings")

"""TensorFlow Datasets: a prepared dataset, read by random access, without TensorFlow.

    Source("tfds", {"train": "train", "eval": "validation"},
           columns={"text": "sentence1", "text_pair": "sentence2"},
           options={"name": "glue/rte", "data_dir": "~/tensorflow_datasets"})
    # or a prepared builder folder:  options={"path": ".../glue/rte/2.0.0"}

By name, the split is opened with `tfds.data_source` (never downloading);
by folder, with `tfds.builder_from_directory`. Both read `array_record` (or
parquet) files, so TensorFlow need not be installed. The examples are
written once into a `datasets` Arrow cache (keyed by the TFDS files' names,
sizes and times, so changed data is re-read), so a large split is streamed
from disk rather than held in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterator

import datasets
import numpy as np

from mtl_jax.tasks.sources.base import (LINE, DataError, RawSplit, Source,
                                        check_not_empty, register_reader)
from mtl_jax.tasks.sources.labels import check_mode, class_label_string

# Examples fetched from the data source at a time.
READ_BATCH = 1024


@register_reader("tfds")
def read_tfds(source: Source, split: str, fields: tuple[str, ...]) -> RawSplit:
  """One split of a prepared TFDS dataset; class labels become label strings."""
  options = dict(source.options)
  mode = options.pop("class_labels", "names")
  path, name = options.pop("path", None), options.pop("name", None)
  data_dir = options.pop("data_dir", None)
  if options:
    raise DataError(f"tfds source: unknown options {sorted(options)}; known: name, "
                    "data_dir, path, class_labels")
  if bool(path) == bool(name):
    raise DataError("tfds source: set options.name (with options.data_dir) or "
                    "options.path (a prepared builder folder), not both or neither")
  where = f"tfds:{name or path}[{split}]"
  check_mode(mode, where)
  builder = _builder(name, data_dir, path, where)
  features = builder.info.features
  columns = {}
  for field in fields:
    column = str(source.columns.get(field, field))
    if column not in features:
      raise DataError(f"{where}: no feature {column!r} for field {field!r}; the "
                      f"dataset has features {sorted(features)}")
    columns[field] = column
  _open_split(name, data_dir, path, split, where)  # fail here, not in the generator
  dataset = datasets.Dataset.from_generator(
      _examples, gen_kwargs=dict(
          name=name, data_dir=data_dir and os.path.expanduser(data_dir),
          path=path and os.path.expanduser(path), split=split,
          columns=json.dumps(columns), mode=mode, where=where,
          signature=_files_signature(str(builder.data_dir))))
  return check_not_empty(RawSplit(dataset, where, unit="row"), fields,
                         source.skip_bad_rows)


def _builder(name: str | None, data_dir: str | None, path: str | None, where: str):
  import tensorflow_datasets as tfds

  if path:
    path = os.path.expanduser(path)
    try:
      return tfds.builder_from_directory(path)
    except Exception as error:  # tfds raises OSError subclasses, and others
      raise DataError(f"{where}: {path} is not a prepared TFDS dataset folder (it "
                      f"needs dataset_info.json and the data files): {error}") from error
  data_dir = data_dir and os.path.expanduser(data_dir)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    prepared = builder.is_prepared()
  except Exception:  # DatasetNotFoundError: neither its code nor its files
    prepared = False
  if not prepared:
    raise DataError(
        f"{where}: the TFDS dataset {name!r} is not prepared in "
        f"{data_dir or 'the default data_dir'}. Prepare it first, e.g. `tfds build "
        f"{name} --data_dir={data_dir or '~/tensorflow_datasets'} "
        "--file_format=array_record` (building may need TensorFlow; reading does "
        "not), or set options.path to a prepared builder folder.")
  return builder


def _open_split(name: str | None, data_dir: str | None, path: str | None, split: str,
                where: str):
  """The split as a random-access data source."""
  import tensorflow_datasets as tfds

  try:
    if path:
      return tfds.builder_from_directory(os.path.expanduser(path)).as_data_source(split)
    return tfds.data_source(name, split=split, data_dir=data_dir and
                            os.path.expanduser(data_dir), download=False)
  except NotImplementedError as error:
    raise DataError(f"{where}: the dataset is prepared in a format without random "
                    "access (tfrecord); prepare it with --file_format=array_record "
                    f"(or parquet) to read it without TensorFlow: {error}") from error
  except (ValueError, KeyError) as error:
    raise DataError(f"{where}: cannot open the split: {error}") from error


def _examples(name, data_dir, path, split, columns, mode, where, signature
              ) -> Iterator[dict[str, Any]]:
  """The split's rows as our fields (a generator for `Dataset.from_generator`)."""
  del signature  # only part of the cache key
  import tensorflow_datasets as tfds

  columns = json.loads(columns)
  data = _open_split(name, data_dir, path, split, where)
  features = data.dataset_info.features
  for start in range(0, len(data), READ_BATCH):
    indices = list(range(start, min(start + READ_BATCH, len(data))))
    for row, example in zip(indices, data.__getitems__(indices)):
      line = row + 1
      out = {field: _value(example[column], features[column], mode,
                           f"{where}: row {line}", tfds)
             for field, column in columns.items()}
      out[LINE] = line
      yield out


def _value(value: Any, feature, mode: str, where: str, tfds) -> Any:
  """A TFDS value as plain Python: text as str, class ids as label strings."""
  if isinstance(feature, tfds.features.ClassLabel):
    return class_label_string(value, feature.names, mode, where)
  inner = getattr(feature, "feature", None)
  if isinstance(inner, tfds.features.ClassLabel):
    return [class_label_string(v, inner.names, mode, where) for v in np.ravel(value)]
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.ndarray):
    return [v.decode("utf-8") if isinstance(v, bytes) else v.item()
            for v in value.ravel()] if value.ndim else value.item()
  if isinstance(value, np.generic):
    return value.item()
  return value


def _files_signature(directory: str) -> str:
  """Names, sizes and modification times of a builder folder's files."""
  entries = []
  for root, _, files in os.walk(directory):
    for file in sorted(files):
      stat = os.stat(os.path.join(root, file))
      entries.append((os.path.relpath(os.path.join(root, file), directory),
                      stat.st_size, stat.st_mtime_ns))
  return hashlib.sha256(json.dumps(sorted(entries)).encode()).hexdigest()

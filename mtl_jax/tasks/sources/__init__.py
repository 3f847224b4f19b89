"""Reading a task's raw examples, as Hugging Face `datasets`.

Formats: `csv`, `tsv`, `jsonl`, `parquet` (`table.py`), `conll`
(`conll.py`), `hf` (hub names or local files, `hf.py`) and `tfds` (prepared
TensorFlow Datasets, without TensorFlow, `tfds.py`). The contract is in
`base.py`.
"""

from mtl_jax.tasks.sources.base import (HELDOUT, LINE, PART, READERS, DataError, RawSplit,
                                        Source, column_values, read_split,
                                        register_reader)
# Each module registers its formats in READERS.
from mtl_jax.tasks.sources import conll, hf, table, tfds  # noqa: F401  isort: skip

"""Hugging Face `datasets` and TFDS sources, read by their real loading code from local data."""

import sys

import datasets
import huggingface_hub
import numpy as np
import pytest

from mtl_jax.tasks import DataError, Source, TaskRegistry, read_split

RTE_NAMES = ["entailment", "not_entailment"]
RTE = {"sentence1": ["A cat sleeps.", "Stocks fell.", "It rained."],
       "sentence2": ["An animal sleeps.", "Stocks rose.", "The ground is wet."],
       "label": [0, 1, 0], "idx": [0, 1, 2]}
PAIR = {"text": "sentence1", "text_pair": "sentence2"}
FIELDS = ("text", "text_pair", "label")


def _rte(rows=RTE):
  features = datasets.Features({"sentence1": datasets.Value("string"),
                                "sentence2": datasets.Value("string"),
                                "label": datasets.ClassLabel(names=RTE_NAMES),
                                "idx": datasets.Value("int32")})
  return datasets.Dataset.from_dict(rows, features=features)


@pytest.fixture(scope="module")
def hub_copy(tmp_path_factory):
  """A local copy of a hub dataset repo: parquet files per config, README configs."""
  root = tmp_path_factory.mktemp("glue_hub")
  (root / "rte").mkdir()
  _rte().to_parquet(str(root / "rte" / "train-00000-of-00001.parquet"))
  _rte().select([2, 1]).to_parquet(str(root / "rte" / "validation-00000-of-00001.parquet"))
  (root / "README.md").write_text(
      "---\nconfigs:\n- config_name: rte\n  data_files:\n  - split: train\n"
      "    path: rte/train-*\n  - split: validation\n    path: rte/validation-*\n---\n")
  return root


def test_hf_local_copy_of_a_hub_repo(hub_copy):
  task = TaskRegistry.get("glue_rte", hf=str(hub_copy))
  train, dev = task.read("train"), task.read("eval")
  assert train.column("text") == RTE["sentence1"]
  assert train.column("label") == ["entailment", "not_entailment", "entailment"]
  assert dev.column("text_pair") == ["The ground is wet.", "Stocks rose."]
  assert train.dataset[0]["_line"] == 1 and train.unit == "row"


def test_hf_save_to_disk_folder_and_class_label_ids(tmp_path):
  datasets.DatasetDict({"train": _rte()}).save_to_disk(str(tmp_path / "saved"))
  source = Source("hf", {"train": "train", "eval": "test"}, columns=PAIR,
                  options={"path": str(tmp_path / "saved"), "class_labels": "ids"})
  assert read_split(source, "train", FIELDS).column("label") == ["0", "1", "0"]
  with pytest.raises(DataError, match=r"no split 'test'; the saved dataset has \['train'\]"):
    read_split(source, "eval", FIELDS)


def test_hf_builder_with_data_files(tmp_path):
  path = tmp_path / "train.parquet"
  _rte().to_parquet(str(path))
  source = Source("hf", {"train": "train"}, columns=PAIR,
                  options={"path": "parquet", "data_files": {"train": str(path)}})
  assert read_split(source, "train", FIELDS).column("text_pair") == RTE["sentence2"]


def test_hf_unlabelled_rows_are_named(tmp_path):
  test_rows = dict(RTE, label=[0, -1, 1])
  datasets.DatasetDict({"test": _rte(test_rows)}).save_to_disk(str(tmp_path / "saved"))
  source = Source("hf", {"eval": "test"}, columns=PAIR, options={"path": str(tmp_path / "saved")})
  with pytest.raises(DataError, match=r"hf:.*\[test\]: row 2: label -1 is not one of the 2 "
                     r"classes .*unlabelled test split"):
    read_split(source, "eval", FIELDS)


def test_hf_hub_unreachable_says_so_and_suggests_local_files(monkeypatch):
  # Offline mode fails as fast as a missing network, through the same code path.
  monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
  monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
  task = TaskRegistry.get("glue_rte")
  with pytest.raises(DataError) as error:
    task.read("train")
  message = str(error.value)
  assert message.startswith("task glue_rte: hf:nyu-mll/glue/rte[train]: cannot reach the "
                            "Hugging Face hub")
  assert "save_to_disk" in message and "options.path" in message


def test_hf_missing_column_is_named(hub_copy):
  source = Source("hf", {"train": "train"}, columns={"text": "premise"},
                  options={"path": str(hub_copy), "name": "rte"})
  with pytest.raises(DataError, match=r"no column 'premise' for field 'text'.*"
                     r"\['sentence1', 'sentence2', 'label', 'idx'\]"):
    read_split(source, "train", ("text", "label"))


# --- TFDS -------------------------------------------------------------------------


def _tiny_glue_builder():
  import tensorflow_datasets as tfds

  class Glue(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A two-config stand-in for TFDS's glue, with its feature names and labels."""

    VERSION = tfds.core.Version("2.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="rte"),
                       tfds.core.BuilderConfig(name="stsb")]

    def _info(self):
      label = (np.float32 if self.builder_config.name == "stsb"
               else tfds.features.ClassLabel(names=RTE_NAMES))
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "sentence1": tfds.features.Text(), "sentence2": tfds.features.Text(),
          "label": label, "idx": np.int32}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._generate_examples(3),
              "validation": self._generate_examples(2)}

    def _generate_examples(self, n):
      for i in range(n):
        label = i * 1.5 if self.builder_config.name == "stsb" else RTE["label"][i]
        yield i, {"sentence1": RTE["sentence1"][i], "sentence2": RTE["sentence2"][i],
                  "label": label, "idx": i}

  return Glue


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  """A TFDS data_dir with glue/rte and glue/stsb prepared as array_record."""
  root = tmp_path_factory.mktemp("tfds")
  builder_cls = _tiny_glue_builder()
  for config in ("rte", "stsb"):
    builder_cls(config=config, data_dir=str(root),
                file_format="array_record").download_and_prepare()
  return root


def test_tfds_by_name_without_tensorflow(tfds_dir):
  task = TaskRegistry.get("glue_rte", tfds=str(tfds_dir))
  assert dict(task.source.options)["name"] == "glue/rte"
  train = task.read("train")
  # Order is the data source's (TFDS shuffles when preparing); rows are complete.
  rows = sorted(zip(train.column("text"), train.column("text_pair"), train.column("label")))
  assert rows == sorted(zip(RTE["sentence1"], RTE["sentence2"],
                            [RTE_NAMES[i] for i in RTE["label"]]))
  assert len(task.read("eval").dataset) == 2
  assert "tensorflow" not in sys.modules
  # Streamed into an Arrow cache file (memory-mapped), not built in memory.
  assert train.dataset.cache_files


def test_tfds_builder_folder_and_regression(tfds_dir):
  task = TaskRegistry.get("glue_stsb", tfds=str(tfds_dir / "glue" / "stsb" / "2.0.0"))
  assert "path" in task.source.options
  train = task.read("train")
  assert sorted(train.column("label")) == [0.0, 1.5, 3.0]


def test_tfds_class_label_ids(tfds_dir):
  source = Source("tfds", {"train": "train"}, columns=PAIR,
                  options={"name": "glue/rte", "data_dir": str(tfds_dir),
                           "class_labels": "ids"})
  assert sorted(read_split(source, "train", FIELDS).column("label")) == ["0", "0", "1"]


def test_tfds_not_prepared_is_a_clear_error(tmp_path, tfds_dir):
  task = TaskRegistry.get("glue_rte", tfds=str(tmp_path))
  with pytest.raises(DataError, match=r"task glue_rte: tfds:glue/rte\[train\]: the TFDS "
                     r"dataset 'glue/rte' is not prepared in .*tfds build glue/rte"):
    task.read("train")
  with pytest.raises(DataError, match="not a prepared TFDS dataset folder"):
    read_split(Source("tfds", {"train": "train"}, options={"path": str(tmp_path)}),
               "train", FIELDS)
  source = Source("tfds", {"train": "nope"}, columns=PAIR,
                  options={"name": "glue/rte", "data_dir": str(tfds_dir)})
  with pytest.raises(DataError, match=r"cannot open the split: Unknown split 'nope'"):
    read_split(source, "train", FIELDS)

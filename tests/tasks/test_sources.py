import json

import pytest

from mtl_jax.tasks import DataError, Source, read_split


def _csv(tmp_path, text, name="data.csv"):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def test_csv_reads_text_fields_and_lines(data_dir):
  source = Source("csv", {"train": str(data_dir / "news_train.csv")})
  raw = read_split(source, "train", ("text", "label"))
  assert len(raw.dataset) == 48
  assert raw.dataset[0]["_line"] == 2  # line 1 is the header
  assert isinstance(raw.dataset[0]["label"], str)


def test_csv_keeps_na_like_strings(tmp_path):
  path = _csv(tmp_path, "text,label\nNA,1\nnull,0\n")
  raw = read_split(Source("csv", {"train": path}), "train", ("text", "label"))
  assert raw.dataset["text"] == ["NA", "null"]


def test_tsv_without_header_by_column_index(tmp_path):
  path = _csv(tmp_path, "src\t1\t*\tGood sentence .\nsrc\t0\t*\tBad sentence .\n", "a.tsv")
  source = Source("tsv", {"train": path}, columns={"text": 3, "label": 1}, header=False)
  raw = read_split(source, "train", ("text", "label"))
  assert raw.dataset["text"] == ["Good sentence .", "Bad sentence ."]
  assert raw.dataset["label"] == ["1", "0"]


def test_jsonl(tmp_path):
  path = tmp_path / "a.jsonl"
  path.write_text("\n".join(json.dumps({"sentence": s, "y": y})
                            for s, y in [("hi there", 1), ("bye", 0)]))
  source = Source("jsonl", {"train": str(path)}, columns={"text": "sentence", "label": "y"})
  raw = read_split(source, "train", ("text", "label"))
  assert raw.dataset["text"] == ["hi there", "bye"]


def test_wrong_column_count_names_file_and_line(tmp_path):
  path = _csv(tmp_path, "text,label\nfine,1\ntoo,many,2\n")
  with pytest.raises(DataError, match=r"data.csv.*line 3"):
    read_split(Source("csv", {"train": path}), "train", ("text", "label"))


def test_empty_text_names_the_line(tmp_path):
  path = _csv(tmp_path, "text,label\nfine,1\n  ,0\n")
  with pytest.raises(DataError, match=r"line 3: empty 'text'"):
    read_split(Source("csv", {"train": path}), "train", ("text", "label"))


def test_skip_bad_rows_counts_them(tmp_path):
  path = _csv(tmp_path, "text,label\nfine,1\ntoo,many,2\n,0\ngood,0\n")
  raw = read_split(Source("csv", {"train": path}, skip_bad_rows=True), "train",
                   ("text", "label"))
  assert raw.dataset["text"] == ["fine", "good"]
  assert raw.num_skipped == 2


def test_missing_column_lists_the_columns(tmp_path):
  path = _csv(tmp_path, "sentence,label\na,1\n")
  with pytest.raises(DataError, match=r"no column 'text'.*\['sentence', 'label'\]"):
    read_split(Source("csv", {"train": path}), "train", ("text", "label"))


def test_missing_file_and_split(tmp_path):
  source = Source("csv", {"train": str(tmp_path / "nope.csv")})
  with pytest.raises(FileNotFoundError, match="nope.csv"):
    read_split(source, "train", ("text", "label"))
  with pytest.raises(KeyError, match="no 'eval' split"):
    read_split(source, "eval", ("text", "label"))


def test_unknown_format():
  with pytest.raises(ValueError, match="unknown source format 'xml'"):
    Source("xml", {})


def test_conll_any_column_as_tags(data_dir):
  path = str(data_dir / "ner_train.txt")
  ner = read_split(Source("conll", {"train": path}), "train", ("tokens", "tags"))
  pos = read_split(Source("conll", {"train": path}, columns={"tags": 1}), "train",
                   ("tokens", "tags"))
  assert len(ner.dataset) == 40  # -DOCSTART- is not a sentence
  assert ner.dataset[0]["tokens"] == pos.dataset[0]["tokens"]
  assert ner.dataset[0]["tags"][0].startswith("B-")
  assert pos.dataset[0]["tags"][0] == "NNP"
  assert ner.dataset[0]["_line"] == 3


def test_conll_wrong_column_count(tmp_path):
  path = _csv(tmp_path, "EU NNP B-NP B-ORG\nrejects VBZ O\n\n", "bad.txt")
  with pytest.raises(DataError, match=r"bad.txt: line 2: expected 4 columns, found 3"):
    read_split(Source("conll", {"train": path}), "train", ("tokens", "tags"))


def test_conll_skip_bad_sentences(tmp_path):
  path = _csv(tmp_path, "A NNP O\nb VBZ\n\nC NNP B-LOC\n\n", "bad.txt")
  raw = read_split(Source("conll", {"train": path}, skip_bad_rows=True), "train",
                   ("tokens", "tags"))
  assert raw.dataset["tokens"] == [["C"]]
  assert raw.num_skipped == 1


def test_parquet_keeps_types_and_columns_by_index(tmp_path):
  import pyarrow as pa
  import pyarrow.parquet as pq
  path = tmp_path / "a.parquet"
  pq.write_table(pa.table({"sentence": ["a cat", "a dog"], "y": [1, 0],
                           "tags": [["pets"], ["pets", "home"]]}), str(path))
  source = Source("parquet", {"train": str(path)}, columns={"text": 0, "label": "y"})
  raw = read_split(source, "train", ("text", "label"))
  assert raw.column("text") == ["a cat", "a dog"] and raw.column("label") == [1, 0]
  assert raw.dataset[0]["_line"] == 1
  raw = read_split(Source("parquet", {"train": str(path)},
                          columns={"text": "sentence", "label": "tags"}),
                   "train", ("text", "label"))
  assert raw.column("label") == [["pets"], ["pets", "home"]]


def test_split_with_parts_names_each_part_file(tmp_path):
  a = _csv(tmp_path, "text,label\nfine,1\n", "a.csv")
  b = _csv(tmp_path, "text,label\ngood,0\nok,1\n", "b.csv")
  source = Source("csv", {"eval": {"in": a, "out": b}})
  raw = read_split(source, "eval", ("text", "label"))
  assert raw.column("text") == ["fine", "good", "ok"]
  assert raw.parts.tolist() == ["in", "out", "out"]
  assert raw.where(3, "out") == f"{b}: line 3"
  bad = _csv(tmp_path, "text,label\n,1\n", "c.csv")
  with pytest.raises(DataError, match=r"c.csv: line 2: empty 'text'"):
    read_split(Source("csv", {"eval": {"in": a, "bad": bad}}), "eval", ("text", "label"))


def test_holdout_splits_train_into_a_fixed_heldout_slice_and_the_rest(tmp_path):
  from mtl_jax.tasks.sources import HELDOUT
  path = tmp_path / "t.csv"
  path.write_text("text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(40)))
  source = Source("csv", {"train": str(path)}, holdout=0.25)
  train = read_split(source, "train", ("text", "label"))
  heldout = read_split(source, HELDOUT, ("text", "label"))
  texts = lambda raw: raw.column("text")
  assert len(heldout.dataset) == 10 and len(train.dataset) == 30
  assert not set(texts(train)) & set(texts(heldout))
  assert sorted(texts(train) + texts(heldout)) == sorted(f"row {i}" for i in range(40))
  # Rows keep their file lines (errors still name them)...
  assert [int(t.split()[1]) + 2 for t in texts(heldout)] == heldout.column("_line")
  # ...and the slice is the same in every read, not a function of a run's seed.
  assert texts(read_split(source, HELDOUT, ("text", "label"))) == texts(heldout)
  assert source.has_split(HELDOUT) and not Source("csv", {"train": str(path)}).has_split(HELDOUT)
  with pytest.raises(KeyError, match="set the source's holdout"):
    read_split(Source("csv", {"train": str(path)}), HELDOUT, ("text", "label"))
  with pytest.raises(ValueError, match="holdout must be a fraction"):
    Source("csv", {"train": str(path)}, holdout=1.5)
  with pytest.raises(DataError, match="both need at least one"):
    read_split(Source("csv", {"train": str(path)}, holdout=0.001), "train", ("text", "label"))


def test_conll_with_a_byte_order_mark_reads_as_without(tmp_path):
  text = "-DOCSTART- -X- O\n\nMaria B-PER\nsang O\n\nParis B-LOC\n"
  plain, marked = tmp_path / "plain.txt", tmp_path / "bom.txt"
  plain.write_text(text, encoding="utf-8")
  marked.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
  read = lambda path: read_split(Source("conll", {"train": str(path)}), "train",
                                 ("tokens", "tags")).column("tokens")
  assert read(marked) == read(plain) == [["Maria", "sang"], ["Paris"]]


def test_conll_bytes_that_are_not_utf8_are_named(tmp_path):
  path = tmp_path / "latin1.txt"
  path.write_bytes("Maria B-PER\n\nJos\u00e9 B-PER\n".encode("latin-1"))
  with pytest.raises(DataError, match=r"latin1.txt: line 3: byte 0xe9 at column 4 is not "
                     r"utf-8 text; set the source's options.encoding"):
    read_split(Source("conll", {"train": str(path)}), "train", ("tokens", "tags"))
  source = Source("conll", {"train": str(path)}, options={"encoding": "latin-1"})
  assert read_split(source, "train", ("tokens", "tags")).column("tokens")[1] == ["Jos\u00e9"]


# tests/data/bad: files that once gave raw tracebacks or errors that named nothing.
def test_csv_bytes_that_are_not_utf8_are_named_beyond_the_first_8kb(data_dir):
  path = data_dir / "bad" / "latin1_after_8kb.csv"
  assert path.stat().st_size > 8192
  with pytest.raises(DataError, match=r"latin1_after_8kb.csv: line 402: byte 0xe9 at column 4 "
                     r"is not utf-8 text; set the source's options.encoding"):
    read_split(Source("csv", {"train": str(path)}), "train", ("text", "label"))
  source = Source("csv", {"train": str(path)}, options={"encoding": "latin-1"})
  assert read_split(source, "train", ("text", "label")).column("text")[-1] == "caf\u00e9 au lait"


def test_header_only_csv_says_it_has_no_rows(data_dir):
  with pytest.raises(DataError, match=r"header_only.csv: no rows \(only a header\)"):
    read_split(Source("csv", {"train": str(data_dir / "bad" / "header_only.csv")}), "train",
               ("text", "label"))


def test_jsonl_field_of_mixed_types_names_the_line(data_dir):
  with pytest.raises(DataError, match=r"mixed_labels.jsonl: line 2: field 'label' is str 'x', "
                     r"but int on line 1; a field holds one type"):
    read_split(Source("jsonl", {"train": str(data_dir / "bad" / "mixed_labels.jsonl")}),
               "train", ("text", "label"))


def test_a_conll_file_is_parsed_once_and_again_when_it_changes(tmp_path, monkeypatch):
  from mtl_jax.tasks.sources import conll

  path = _csv(tmp_path, "A NNP O\nb VBZ\n\nC NNP B-LOC\n\n", "cached.txt")
  source = Source("conll", {"train": path}, skip_bad_rows=True)
  parsed = []
  parse = conll._parse  # pylint: disable=protected-access
  monkeypatch.setattr(conll, "_parse", lambda *a: parsed.append(a) or parse(*a))
  first = read_split(source, "train", ("tokens", "tags"))
  second = read_split(source, "train", ("tokens", "tags"))
  assert len(parsed) == 1  # the second read maps the Arrow cache
  assert second.dataset["tokens"] == first.dataset["tokens"] == [["C"]]
  assert second.num_skipped == first.num_skipped == 1
  # File-backed, with one fingerprint across reads: what lets datasets.map cache
  # the tokenization of a second start.
  assert second.dataset.cache_files and second.dataset._fingerprint == first.dataset._fingerprint  # pylint: disable=protected-access
  with open(path, "a") as f:
    f.write("D NNP B-PER\n\n")
  assert read_split(source, "train", ("tokens", "tags")).dataset["tokens"] == [["C"], ["D"]]
  assert len(parsed) == 2


def test_a_conll_file_reads_when_its_cache_cannot_be_written(tmp_path, monkeypatch, caplog):
  from mtl_jax.tasks.sources import conll

  def full_disk(*args):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(conll, "_write_cache", full_disk)
  path = _csv(tmp_path, "A NNP B-PER\n\n", "uncached.txt")
  raw = read_split(Source("conll", {"train": path}), "train", ("tokens", "tags"))
  assert raw.dataset["tokens"] == [["A"]]
  assert "cannot write the parsed-file cache" in caplog.text

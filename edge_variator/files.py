"""Files on disk: atomic writes (an interrupted save leaves the old artifact or none, never half
of one) and content hashes (how plugins, adapters and data files are bound to what they fit)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def folder_digest(folder: str | Path) -> str:
    """sha256 of `<sha256>  <path>` lines, one per file under `folder` in path order (what `sha256sum`
    prints, sorted): one hash for a folder of files, such as a Core ML package or a plugin set."""
    folder = Path(folder)
    files = sorted((f.relative_to(folder).as_posix(), f) for f in folder.rglob("*") if f.is_file())
    lines = "".join(f"{file_sha256(path)}  {name}\n" for name, path in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def write_bytes(path: str | Path, content: bytes) -> None:
    """Write to a temp file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(content)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; artifacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json(path: str | Path, content: object) -> None:
    write_bytes(path, (json.dumps(content, indent=2, sort_keys=True) + "\n").encode())


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty temp folder beside `path`; on success it replaces `path` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        yield tmp
        for written in [tmp, *tmp.rglob("*")]:  # mkdtemp and some writers make 0700/0600
            written.chmod(0o755 if written.is_dir() else 0o644)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)

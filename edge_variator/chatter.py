"""Third-party chatter kept off the command line's stderr (shown again with --verbose).

What it drops, line by line, from the process's stderr (file descriptor 2, so C++ logs are caught
as well as Python's): torchao's notes on optional kernels it could not load, torch's pytree
deprecation, ExecuTorch's cpuinfo probing, coremltools' version notes and its progress bar per
conversion pass, and Python's FutureWarning and DeprecationWarning (with the source line that
follows each). Everything else passes unchanged, progress bars included, and so do our errors.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

NOISE = re.compile("|".join([
    r"^Failed to load .*torchao",  # optional CUDA kernels on a CPU build
    r"^W\d{4} .*_pytree\.py",  # torch: register_constant() on Enum subclasses is deprecated
    r"^\[cpuinfo_utils\.cpp:\d+\]",  # ExecuTorch probing /sys for the CPU model
    r"scikit-learn version .* is not supported",  # coremltools
    r"^Torch version .* has not been tested with coremltools",
    r"^Failed to load _ML\w+: No module named 'coremltools",  # the macOS-only runtime
    r"^(Converting PyTorch Frontend|Running MIL|Running PyTorch)",  # coremltools' bar per pass
    r"(FutureWarning|DeprecationWarning): ",
]))


@contextmanager
def filtered_stderr(noise: re.Pattern = NOISE) -> Iterator[None]:
    """Route fd 2 through a pipe and drop the lines (or carriage-return updates) that match
    `noise`; a line that follows a dropped warning and is indented (its source line) goes too."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        pending, after_warning = b"", False
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                pending += chunk
                # a piece ends at a newline or a carriage return (a progress bar's update)
                pieces = re.split(rb"(?<=[\r\n])", pending)
                pending = pieces.pop()
                for piece in pieces:
                    text = piece.decode("utf-8", "replace")
                    dropped = bool(noise.search(text)) or (after_warning and text.startswith("  "))
                    after_warning = dropped and "Warning: " in text
                    if not dropped:
                        os.write(saved, piece)
            if pending and not noise.search(pending.decode("utf-8", "replace")):
                os.write(saved, pending)

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the forwarder drains and stops
        thread.join(timeout=5)
        os.close(saved)


@contextmanager
def quiet() -> Iterator[None]:
    """The command line's default: warnings about other libraries' internals off, fd 2 filtered."""
    with warnings.catch_warnings(), filtered_stderr():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield

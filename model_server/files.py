"""Atomic file writes: a file is either the whole new version or the old one, never a torn mix.

Writers fill a temporary file next to the target (same folder, so the rename never
crosses file systems), flush it to disk and rename it over the target. Temporary names
match :data:`TEMPORARY_PATTERN`, so a folder can be swept of those left by a killed process.
This module imports nothing of the server: any part of it may use it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

TEMPORARY_PATTERN = ".*.tmp"      # glob of the temporary names below, for sweeping up after a crash


def temporary_path(path: str | os.PathLike) -> Path:
    """Where :func:`atomic_write` writes ``path`` first: a hidden name in the same folder, per process."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file for writing and, when the block ends without an error, fsync it and
    rename it to ``path``. On an error the temporary file is removed and ``path`` is left as it was.

    ``mode`` is "wb" or "w" (text, with ``encoding``); the folder must exist."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write opens files for writing ('w' or 'wb'), not {mode!r}")
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

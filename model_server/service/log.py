"""The server's log: bounded in size and in rate, whatever clients send.

Messages go to a stream (stderr by default) or to a file that rotates at ``max_bytes``
(keeping ``backups`` old files). Messages that share a ``key`` (one per kind of refusal
or failure) are written at most ``burst`` times per ``window_s``; the rest are counted
and summed up in one line when the window ends, so a flood of bad frames costs a few
lines, not a megabyte.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
import time
from pathlib import Path
from typing import Callable, TextIO

MAX_BYTES = 1 << 20
BACKUPS = 2
BURST = 5
WINDOW_S = 60.0


class ServerLog:
    """A rate-limited, rotating log of the server's own lines."""

    def __init__(self, path: Path | None = None, stream: TextIO | None = None, max_bytes: int = MAX_BYTES,
                 backups: int = BACKUPS, burst: int = BURST, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic):
        if path is not None:
            handler: logging.Handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", errors="backslashreplace")
        else:
            handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s [sketch2mesh-server] %(message)s"))
        self._logger = logging.Logger("sketch2mesh.server", logging.INFO)   # not registered: one per log
        self._logger.addHandler(handler)
        self._handler = handler
        self.burst, self.window_s, self._clock = burst, window_s, clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}   # key -> (window start, messages in it)

    def say(self, text: str, key: str | None = None) -> None:
        """Write ``text``; with a ``key``, only while that key is under its rate."""
        if key is not None:
            with self._lock:
                now = self._clock()
                start, count = self._windows.get(key, (now, 0))
                if now - start >= self.window_s:
                    if count > self.burst:
                        self._logger.info("(%d more %r messages in the last %.0f s were not written)",
                                          count - self.burst, key, now - start)
                    start, count = now, 0
                self._windows[key] = (start, count + 1)
                if count >= self.burst:
                    return
        self._logger.info("%s", text)

    def close(self) -> None:
        """Flush and close the file (or stream handler)."""
        self._logger.removeHandler(self._handler)
        self._handler.close()

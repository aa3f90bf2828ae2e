"""Cooperative cancellation of the job that runs on this thread.

The server runs each job inside :func:`cancellable` with the job's cancel event; long
loops in the core call :func:`checkpoint` (raise :class:`Interrupted` when cancelled) or
:func:`requested` (ask, to stop with a partial result, as Fit to strokes does) often
enough that a cancel acts within a second. Outside a job both are free no-ops, so the
command line and the tests run the core as before.

A leaf module: it imports nothing of the project, so every layer may call it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class Interrupted(Exception):
    """The job running on this thread was cancelled."""


_local = threading.local()


@contextmanager
def cancellable(event: threading.Event) -> Iterator[None]:
    """Run the body as a job that ``event`` cancels."""
    previous = getattr(_local, "event", None)
    _local.event = event
    try:
        yield
    finally:
        _local.event = previous


def requested() -> bool:
    """Whether the job running on this thread has been cancelled."""
    event = getattr(_local, "event", None)
    return event is not None and event.is_set()


def checkpoint() -> None:
    """Raise :class:`Interrupted` if the job running on this thread has been cancelled."""
    if requested():
        raise Interrupted()

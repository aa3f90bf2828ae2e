"""The byte budget: how many payload bytes all connections may be reading at once.

A payload is read into one buffer only after its frame's token was checked; before that,
its connection takes the payload's size from the budget (:func:`room`), waiting a little
for others to give theirs back, else the request is answered busy. So many large requests
at once cannot exhaust the server's memory.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from sketch2mesh_addon.protocol import ProtocolError

from model_server.service.refusals import Busy


class ByteBudget:
    """Payload bytes that may be held at once, across connections."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._cond = threading.Condition()

    def take(self, n: int, timeout: float) -> bool:
        """Reserve ``n`` bytes (at most the limit), waiting up to ``timeout`` s for others to give theirs back."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.used + n <= self.limit, timeout):
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        """Return ``n`` bytes taken before."""
        with self._cond:
            self.used -= n
            self._cond.notify_all()


@contextmanager
def room(budget: ByteBudget, plen: int, wait_s: float) -> Iterator[None]:
    """Hold ``plen`` bytes of ``budget`` for the body, waiting up to ``wait_s`` for them;
    a payload larger than the whole budget is too large, one that finds no room is busy."""
    if plen > budget.limit:
        raise ProtocolError("too_large", f"a payload of {plen} bytes is more than the server reads at once")
    if not budget.take(plen, wait_s):
        raise Busy("The Sketch2Mesh server is busy receiving other large requests; try again in a moment.")
    try:
        yield
    finally:
        budget.give(plen)

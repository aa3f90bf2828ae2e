"""Admission: who may bind, who may wait at the door, and who is let in.

The server binds to loopback only (:func:`check_loopback`): the token is the only lock on
the door. A new connection waits in a pool until its first frame's header shows the token
(:func:`token_matches`); waiting connections are capped apart from authenticated ones, and
the oldest waiting one makes room for a newcomer, so idle or trickling peers cannot lock
users out. Authenticated connections are capped too: one more is answered busy.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Callable

from sketch2mesh_addon import protocol

from model_server.service.limits import Limits
from model_server.service.refusals import Busy

BAD_TOKEN = "The server rejected the token; restart the server from the add-on or check the token file."


def check_loopback(host: str) -> None:
    """Refuse to bind anywhere but loopback: the token is the only lock on the door."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve host {host!r}: {exc}") from None
    for info in infos:
        if not ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback:
            raise ValueError(f"the server binds to loopback only; {host!r} is not a loopback address")


def token_matches(header: dict, token: str) -> bool:
    """Whether a frame's header carries the server's token (compared in constant time)."""
    return protocol.tokens_match(protocol.request_token(header), token)


class Admission:
    """The door's two pools: connections still owing their token, and authenticated ones."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: dict[socket.socket, float] = {}   # connections owing their token -> accept time
        self._authenticated = 0

    def admit(self, conn: socket.socket) -> None:
        """Take a new connection into the waiting pool, hanging up on the oldest waiter if full."""
        with self._lock:
            if len(self._waiting) >= self.limits.max_unauthenticated:
                oldest = min(self._waiting, key=self._waiting.get)
                self._waiting.pop(oldest)
                hang_up(oldest)
            self._waiting[conn] = self._clock()

    def authenticate(self, conn: socket.socket, request_id: str) -> None:
        """Move a connection that showed the token from the waiting pool to the authenticated
        one. ConnectionError if it was evicted meanwhile; Busy if the authenticated are full."""
        with self._lock:
            if self._waiting.pop(conn, None) is None:
                raise ConnectionError("evicted while its header was read")
            if self._authenticated >= self.limits.max_connections:
                raise Busy(f"The Sketch2Mesh server is busy: {self._authenticated} connections are open, the most it "
                           "serves at once; try again in a moment.", request_id)
            self._authenticated += 1

    def leave(self, conn: socket.socket, authenticated: bool) -> None:
        """Forget a connection that ends, from whichever pool holds it."""
        with self._lock:
            if self._waiting.pop(conn, None) is None and authenticated:
                self._authenticated -= 1


def hang_up(conn: socket.socket, drain_s: float = 0.0) -> None:
    """End a connection: stop sending, read and drop what the peer still sends for up to
    ``drain_s`` (so it sees our reply rather than a reset), then shut it down."""
    try:
        conn.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + drain_s
        scratch = bytearray(1 << 16)
        while drain_s and time.monotonic() < deadline:
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            if not conn.recv_into(scratch):
                break
    except OSError:
        pass
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass

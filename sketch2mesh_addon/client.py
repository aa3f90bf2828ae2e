"""A socket client for the model server, standard library and numpy only.

It speaks :mod:`protocol` over loopback, streams progress to a callback, and turns
every failure into a :class:`ServerError` whose message is one sentence a Blender
user can act on. It never imports bpy, so it runs in worker threads and in tests.
"""

from __future__ import annotations

import select
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import protocol

CONNECT_TIMEOUT_S = 3.0
FRAME_TIMEOUT_S = 60.0
IDLE_TIMEOUT_S = 10.0    # the server speaks at least every second while it works: this much silence means it hangs
LEGACY_IDLE_TIMEOUT_S = 900.0   # a server without heartbeats (its ping has no heartbeat_s) is silent while it works
POLL_S = 0.1
CANCEL_GRACE_S = 5.0

Progress = Callable[[str, float], None]
ArraysCallback = Callable[[dict[str, np.ndarray]], None]


class ServerError(Exception):
    """The server could not do what was asked. ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ServerUnreachable(ServerError):
    """Nothing answers at host:port."""


class Cancelled(ServerError):
    """The user cancelled the job."""


@dataclass
class ReconstructResult:
    """A mesh in world coordinates, and what the server said about it."""

    vertices: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 3) int32
    info: dict


@dataclass
class FitResult:
    """Fitted world vertices (same order as sent) and the server's report: ``info["fit"]``
    has iou_before, iou_after, flipped_faces, iterations and cancelled; ``info["warnings"]``
    lists sentences about the input mesh."""

    vertices: np.ndarray  # (V, 3) float32
    info: dict


def unreachable_message(host: str, port: int) -> str:
    return (f"The Sketch2Mesh server is not running at {host}:{port}; start it from the "
            "Sketch2Mesh panel or check the Server Python preference.")


def bad_token_message(host: str, port: int) -> str:
    return (f"The Sketch2Mesh server at {host}:{port} rejected the access token; stop and start the server "
            "from the Sketch2Mesh panel, or check that the server and the add-on use the same token file.")


def connect(host: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> socket.socket:
    """Open a connection, or raise :class:`ServerUnreachable`."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        raise ServerUnreachable("unreachable", unreachable_message(host, port)) from None
    sock.settimeout(FRAME_TIMEOUT_S)
    return sock


def request(host: str, port: int, token: str, op: str, params: dict | None = None,
            arrays: dict[str, np.ndarray] | None = None, *, on_progress: Progress | None = None,
            cancel: threading.Event | None = None, request_id: str | None = None,
            idle_timeout: float = IDLE_TIMEOUT_S, on_arrays: ArraysCallback | None = None,
            keep_cancelled_result: bool = False) -> protocol.Message:
    """Send one request and wait for its result, passing progress replies to ``on_progress``
    (and the arrays some of them carry to ``on_arrays``).

    Setting ``cancel`` asks the server, on a second connection, to cancel the job; the
    call then raises :class:`Cancelled`, at the latest after a short grace period, even if
    the result arrives meanwhile, unless ``keep_cancelled_result`` (a cancelled fit still
    answers with its best shape so far)."""
    request_id = request_id or uuid.uuid4().hex
    sock = connect(host, port)
    try:
        try:
            protocol.send_message(sock, protocol.make_request(op, token, request_id, params), arrays)
        except OSError:
            _raise_early_reply(sock, host, port)
            raise ServerError("disconnected", f"The Sketch2Mesh server at {host}:{port} closed the connection "
                                              "while the request was being sent.") from None
        return _await_result(sock, host, port, token, request_id, on_progress, cancel, idle_timeout,
                             on_arrays, keep_cancelled_result)
    finally:
        sock.close()


def _await_result(sock: socket.socket, host: str, port: int, token: str, request_id: str,
                  on_progress: Progress | None, cancel: threading.Event | None,
                  idle_timeout: float, on_arrays: ArraysCallback | None = None,
                  keep_cancelled_result: bool = False) -> protocol.Message:
    last_heard, cancel_sent_at = time.monotonic(), None
    while True:
        now = time.monotonic()
        if cancel is not None and cancel.is_set() and cancel_sent_at is None:
            _send_cancel(host, port, token, request_id)
            cancel_sent_at = now
        if cancel_sent_at is not None and now - cancel_sent_at > CANCEL_GRACE_S:
            raise Cancelled("cancelled", "Cancelled.")
        if now - last_heard > idle_timeout:
            raise ServerError("timeout", f"The Sketch2Mesh server at {host}:{port} stopped answering (nothing for "
                                         f"{idle_timeout:.0f} s; it may hang); stop and start it from the Sketch2Mesh panel.")
        readable, _, _ = select.select([sock], [], [], POLL_S)
        if not readable:
            continue
        last_heard = time.monotonic()
        try:
            reply = protocol.recv_message(sock, deadline=last_heard + FRAME_TIMEOUT_S)
        except socket.timeout:
            raise ServerError("timeout", f"The Sketch2Mesh server at {host}:{port} stopped in the middle of a reply; "
                                         "stop and start it from the Sketch2Mesh panel.") from None
        except (ConnectionError, OSError):
            if cancel_sent_at is not None:
                raise Cancelled("cancelled", "Cancelled.") from None
            raise ServerError("disconnected", f"The Sketch2Mesh server at {host}:{port} closed the connection "
                                              "before answering; it may have crashed, see its log.") from None
        except protocol.ProtocolError as exc:
            raise ServerError(exc.code, f"The Sketch2Mesh server sent a reply the add-on cannot read: {exc.message}") from None
        header = reply.header
        kind = header.get("kind")
        if kind == "progress":
            if on_progress is not None:
                on_progress(str(header.get("message", "")), _fraction(header.get("fraction")))
            if on_arrays is not None and reply.arrays:
                on_arrays(reply.arrays)
            continue
        if kind == "result":
            if cancel_sent_at is not None and not keep_cancelled_result:
                raise Cancelled("cancelled", "Cancelled.")
            return reply
        if kind == "error":
            raise _error_from_reply(header.get("error"), host, port)
        raise ServerError("bad_reply", f"The Sketch2Mesh server sent an unknown reply kind {kind!r}.")


def _raise_early_reply(sock: socket.socket, host: str, port: int) -> None:
    """The server stopped reading our request: if it said why (busy, bad token, too large), raise that."""
    try:
        reply = protocol.recv_message(sock, deadline=time.monotonic() + CONNECT_TIMEOUT_S)
    except (protocol.ProtocolError, ConnectionError, OSError):
        return
    if reply.header.get("kind") == "error":
        raise _error_from_reply(reply.header.get("error"), host, port)


def _fraction(value: object) -> float:
    try:
        return min(1.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return 0.0


def _error_from_reply(error: object, host: str, port: int) -> ServerError:
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code", "error"))
    message = str(error.get("message", "")) or "no details given"
    if code == "bad_token":
        return ServerError(code, bad_token_message(host, port))
    if code == "cancelled":
        return Cancelled(code, "Cancelled.")
    if code in ("bad_input", "unavailable", "busy", "out_of_memory"):
        return ServerError(code, message)
    if code == "bad_version":
        return ServerError(code, f"The add-on and the Sketch2Mesh server speak different protocol versions: {message}")
    return ServerError(code, f"The Sketch2Mesh server reported an error ({code}): {message}")


def silence_timeout(status: dict) -> float:
    """How long a job may stay silent on the server that answered ``ping`` with ``status``."""
    return IDLE_TIMEOUT_S if status.get("heartbeat_s") else LEGACY_IDLE_TIMEOUT_S


def _send_cancel(host: str, port: int, token: str, target: str) -> None:
    """Ask the server to cancel ``target``; a failure here is not worth reporting."""
    try:
        request(host, port, token, "cancel", {"target": target}, idle_timeout=CANCEL_GRACE_S)
    except ServerError:
        pass


def ping(host: str, port: int, token: str) -> dict:
    """The server's status (version, device, pid, jobs)."""
    return request(host, port, token, "ping", idle_timeout=CONNECT_TIMEOUT_S).header.get("result", {})


def shutdown(host: str, port: int, token: str) -> None:
    """Ask the server to stop."""
    request(host, port, token, "shutdown", idle_timeout=CONNECT_TIMEOUT_S)


def reconstruct(host: str, port: int, token: str, strokes: dict[str, list[np.ndarray]], *,
                backend: str = protocol.DEFAULT_BACKEND, detail: str = "medium", refine: int = 0,
                roundness: float = protocol.DEFAULT_ROUNDNESS, on_progress: Progress | None = None,
                cancel: threading.Event | None = None, idle_timeout: float = IDLE_TIMEOUT_S) -> ReconstructResult:
    """Send a sketch (view -> list of (N, 2|3) world view-plane strokes); return the mesh.
    ``roundness`` is the round backend's (the others ignore it)."""
    arrays: dict[str, np.ndarray] = {}
    for view, view_strokes in strokes.items():
        if view_strokes:
            arrays.update(protocol.pack_strokes(view, view_strokes))
    params = {"backend": backend, "detail": detail, "refine": int(refine), "roundness": float(roundness)}
    reply = request(host, port, token, "reconstruct", params, arrays, on_progress=on_progress, cancel=cancel,
                    idle_timeout=idle_timeout)
    vertices, faces = reply.arrays.get("vertices"), reply.arrays.get("faces")
    if vertices is None or faces is None or vertices.ndim != 2 or vertices.shape[1:] != (3,) \
            or faces.ndim != 2 or faces.shape[1:] != (3,):
        raise ServerError("bad_reply", "The Sketch2Mesh server answered without a usable mesh.")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ServerError("bad_reply", "The Sketch2Mesh server sent faces that point past its vertices.")
    return ReconstructResult(np.asarray(vertices, np.float32), np.asarray(faces, np.int32),
                             dict(reply.header.get("result") or {}))


def fit(host: str, port: int, token: str, vertices: np.ndarray, faces: np.ndarray,
        strokes: dict[str, list[np.ndarray]], *, iterations: int = 200, on_progress: Progress | None = None,
        on_vertices: Callable[[np.ndarray], None] | None = None,
        cancel: threading.Event | None = None, idle_timeout: float = IDLE_TIMEOUT_S) -> FitResult:
    """Fit to strokes: send a world-space mesh and a sketch, get the fitted vertices back.

    ``on_vertices`` receives the current (V, 3) vertices every few iterations. Cancelling
    returns the best shape found so far (``info["fit"]["cancelled"]`` is then true)."""
    arrays = protocol.pack_mesh(vertices, faces)
    for view, view_strokes in strokes.items():
        if view_strokes:
            arrays.update(protocol.pack_strokes(view, view_strokes))
    count = len(arrays["mesh.vertices"])

    def relay(received: dict[str, np.ndarray]) -> None:
        current = received.get("vertices")
        if on_vertices is not None and current is not None and current.shape == (count, 3):
            on_vertices(np.asarray(current, np.float32))

    reply = request(host, port, token, "fit", {"iterations": int(iterations)}, arrays, on_progress=on_progress,
                    cancel=cancel, on_arrays=relay, keep_cancelled_result=True, idle_timeout=idle_timeout)
    fitted = reply.arrays.get("vertices")
    if fitted is None or fitted.shape != (count, 3) or not np.all(np.isfinite(fitted)):
        raise ServerError("bad_reply", "The Sketch2Mesh server answered the fit without usable vertices.")
    return FitResult(np.asarray(fitted, np.float32), dict(reply.header.get("result") or {}))

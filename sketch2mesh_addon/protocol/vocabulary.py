"""The request vocabulary: the ops, the fields every request and reply carries, the names
and limits both sides share, and the checks of a request's parameters.

Requests carry ``v`` (the protocol version, the integer 1), ``id`` (a request id of
printable ASCII), ``op``, ``token`` and ``params``. Replies carry ``v``, ``id`` and
``kind``: ``progress`` (``message`` and ``fraction``, any number of them), then exactly
one ``result`` or ``error`` (``error = {"code": .., "message": ..}``). The backends,
details, views and limits here are the core's too: ``tests/model_server/test_wire_vocabulary.py``
keeps them equal.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

from .framing import ProtocolError

PROTOCOL_VERSION = 1
OPS = ("ping", "reconstruct", "fit", "cancel", "shutdown")
REPLY_KINDS = ("progress", "result", "error")
MAX_TOKEN = 256

# Sketch limits, checked by the add-on before sending and by the server on receipt.
VIEW_NAMES = ("front", "side", "top")
MAIN_VIEWS = ("front", "side")  # at least one of these is drawn; both give the true shape, one alone an inflated guess
MAX_POINTS = 100_000
MAX_STROKES = 20_000
MAX_MESH_VERTICES = 500_000
MAX_FIT_FACES = 200_000
MAX_FIT_ITERATIONS = 10_000
BACKENDS = ("learned", "round", "hull")
DEFAULT_BACKEND = "round"   # the backend when none is chosen: the add-on's here, the same as the core's
DETAILS = ("low", "medium", "high")
ROUNDNESS_RANGE = (0.0, 1.0)  # the round backend's cross-sections: the hull's rectangles (0) to ellipses (1)
DEFAULT_ROUNDNESS = 1.0


def make_request(op: str, token: str, request_id: str, params: dict | None = None) -> dict:
    """The header of a request."""
    return {"v": PROTOCOL_VERSION, "id": request_id, "op": op, "token": token, "params": params or {}}


def make_reply(request_id: str, kind: str, **fields: Any) -> dict:
    """The header of a reply: ``progress``, ``result`` or ``error``."""
    return {"v": PROTOCOL_VERSION, "id": request_id, "kind": kind, **fields}


def error_reply(request_id: str, code: str, message: str) -> dict:
    """The header of an error reply."""
    return make_reply(request_id, "error", error={"code": code, "message": message})


def check_request(header: dict) -> tuple[str, str, str, dict]:
    """Validate a request header's common fields; return (id, op, token, params)."""
    version = header.get("v")
    if not isinstance(version, int) or isinstance(version, bool) or version != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"protocol version {version!r} is not {PROTOCOL_VERSION}; update the add-on or server")
    request_id, op, token, params = header.get("id"), header.get("op"), header.get("token"), header.get("params", {})
    if not request_id_of(header):
        raise ProtocolError("bad_request", "'id' must be 1..64 printable ASCII characters")
    if op not in OPS:
        raise ProtocolError("bad_request", f"unknown op {op!r}; expected one of {', '.join(OPS)}")
    if not isinstance(token, str) or len(token) > MAX_TOKEN:
        raise ProtocolError("bad_token", "missing token")
    if not isinstance(params, dict):
        raise ProtocolError("bad_request", "'params' must be an object")
    return request_id, op, token, params


def request_id_of(header: dict) -> str:
    """The header's request id if it is a valid one (1..64 printable ASCII characters, safe
    to echo back and to log), else ''."""
    request_id = header.get("id")
    ok = isinstance(request_id, str) and 0 < len(request_id) <= 64 and request_id.isascii() and request_id.isprintable()
    return request_id if ok else ""


def request_token(header: dict) -> str:
    """The token a request header carries ('' when there is none a server could accept)."""
    token = header.get("token")
    return token if isinstance(token, str) and len(token) <= MAX_TOKEN and token.isascii() else ""


def tokens_match(given: str, expected: str) -> bool:
    """Constant-time token comparison; tokens are ASCII, anything else never matches."""
    if not (isinstance(given, str) and given.isascii() and expected.isascii()):
        return False
    return secrets.compare_digest(given.encode("ascii"), expected.encode("ascii"))


def check_choice(params: dict, key: str, choices: tuple[str, ...], default: str) -> str:
    """Read a string parameter that must be one of ``choices``."""
    value = params.get(key, default)
    if value not in choices:
        raise ProtocolError("bad_request", f"{key} must be one of {', '.join(choices)}, not {value!r}")
    return value


def check_int(params: dict, key: str, lo: int, hi: int, default: int) -> int:
    """Read an integer parameter within [lo, hi]."""
    value = params.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ProtocolError("bad_request", f"{key} must be an integer in {lo}..{hi}, not {value!r}")
    return value


def check_float(params: dict, key: str, lo: float, hi: float, default: float) -> float:
    """Read a number parameter within [lo, hi]; an integer is taken as a float, while a
    bool, a string, NaN or an infinity is refused."""
    value = params.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi \
            or not math.isfinite(value):
        raise ProtocolError("bad_request", f"{key} must be a number from {lo:g} to {hi:g}, not {value!r}")
    return float(value)

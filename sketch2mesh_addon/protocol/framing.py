"""Framing: how one message travels, as a 16-byte prefix, a JSON header and raw arrays.

A frame, all integers little-endian::

    magic    4 bytes   b"S2M1"
    hlen     u32       length of the JSON header, in bytes
    plen     u64       length of the binary payload, in bytes
    header   hlen bytes of UTF-8 JSON, an object
    payload  plen bytes: the arrays that header["arrays"] lists, back to back

Arrays travel raw, never base64: each entry of ``header["arrays"]`` is
``{"name": str, "dtype": "<f4", "shape": [..]}`` and the payload holds their bytes in
that order. A reader takes the header first (:func:`read_header`) and the payload only
once it has checked the header (:func:`read_payload`), so a server can refuse a bad
token before it makes room for a large payload.
"""

from __future__ import annotations

import json
import math
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = b"S2M1"
PREFIX = struct.Struct("<4sIQ")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 47631
DEFAULT_MAX_FRAME = 256 * 1024 * 1024
MAX_HEADER = 1024 * 1024
MAX_REQUEST_HEADER = 64 * 1024   # a request's header is read before its token is checked: keep it small
DTYPES = ("<f4", "<f8", "<i4", "<i8", "<u1", "<u4")


class ProtocolError(Exception):
    """A request or frame that breaks the protocol. ``code`` is machine-readable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Message:
    """One decoded frame: its JSON header and its named arrays."""

    header: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def encode(header: dict, arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """Serialise a header and arrays into one frame."""
    header = dict(header)
    specs, blobs = [], []
    for name, array in (arrays or {}).items():
        a = np.asarray(array)
        dtype = a.dtype.newbyteorder("<").str if a.dtype.byteorder not in ("|",) else a.dtype.str
        if dtype not in DTYPES:
            raise ProtocolError("bad_request", f"array {name!r} has unsupported dtype {a.dtype}")
        a = np.ascontiguousarray(a, dtype=dtype)
        specs.append({"name": name, "dtype": dtype, "shape": list(a.shape)})
        blobs.append(a.tobytes())
    header["arrays"] = specs
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    payload = b"".join(blobs)
    return PREFIX.pack(MAGIC, len(head), len(payload)) + head + payload


def parse_prefix(prefix: bytes, max_frame: int = DEFAULT_MAX_FRAME, max_header: int = MAX_HEADER) -> tuple[int, int]:
    """Check the 16-byte frame prefix; return (header length, payload length)."""
    magic, hlen, plen = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError("bad_frame", "not a Sketch2Mesh frame (bad magic)")
    if hlen == 0 or hlen > max_header:
        raise ProtocolError("too_large", f"header of {hlen} bytes is outside 1..{max_header}")
    if PREFIX.size + hlen + plen > max_frame:
        raise ProtocolError("too_large", f"frame of {PREFIX.size + hlen + plen} bytes exceeds the {max_frame}-byte limit")
    return hlen, plen


def parse_header(head: bytes | bytearray) -> dict:
    """A frame's JSON header, which must be an object; any other text is a ProtocolError."""
    try:
        header = json.loads(head.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise ProtocolError("bad_header", "header is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("bad_header", f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", "header must be a JSON object")
    return header


def array_layout(header: dict, max_bytes: int = DEFAULT_MAX_FRAME) -> list[tuple[str, str, tuple[int, ...], int]]:
    """The arrays a header lists, checked: (name, dtype, shape, byte offset) each. Their
    bytes, back to back, are the payload; the total is :func:`payload_size`."""
    specs = header.get("arrays", [])
    if not isinstance(specs, list):
        raise ProtocolError("bad_header", "'arrays' must be a list")
    layout, names, offset = [], set(), 0
    for spec in specs:
        name, dtype, shape = _check_array_spec(spec, max_bytes)
        if name in names:
            raise ProtocolError("bad_header", f"array {name!r} is listed twice")
        names.add(name)
        layout.append((name, dtype, tuple(shape), offset))
        offset += int(np.dtype(dtype).itemsize) * math.prod(shape)
    return layout


def payload_size(layout: list[tuple[str, str, tuple[int, ...], int]]) -> int:
    """The payload bytes that an :func:`array_layout` takes."""
    if not layout:
        return 0
    name, dtype, shape, offset = layout[-1]
    return offset + int(np.dtype(dtype).itemsize) * math.prod(shape)


def decode_arrays(header: dict, payload: bytes | bytearray | memoryview,
                  max_bytes: int = DEFAULT_MAX_FRAME) -> dict[str, np.ndarray]:
    """The arrays of a frame, as read-only views into ``payload`` (nothing is copied)."""
    layout = array_layout(header, max_bytes)
    if payload_size(layout) != len(payload):
        raise ProtocolError("bad_header", "payload length does not match the listed arrays")
    return {name: np.frombuffer(payload, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape)
            for name, dtype, shape, offset in layout}


def decode(head: bytes, payload: bytes) -> Message:
    """Parse a header and payload (after :func:`parse_prefix`) into a :class:`Message`."""
    header = parse_header(head)
    return Message(header, decode_arrays(header, payload))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _check_array_spec(spec: Any, max_bytes: int = DEFAULT_MAX_FRAME) -> tuple[str, str, list[int]]:
    if not isinstance(spec, dict):
        raise ProtocolError("bad_header", "each array spec must be an object")
    name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        raise ProtocolError("bad_header", "array name must be a string of 1..64 characters")
    if dtype not in DTYPES:
        raise ProtocolError("bad_header", f"array {name!r}: dtype must be one of {', '.join(DTYPES)}")
    if not isinstance(shape, list) or not 1 <= len(shape) <= 4 or not all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31 for n in shape
    ):
        raise ProtocolError("bad_header", f"array {name!r}: shape must be a list of 1 to 4 non-negative ints")
    # Even an empty array's other dimensions must describe something that could fit in a frame.
    if math.prod(max(n, 1) for n in shape) * np.dtype(dtype).itemsize > max_bytes:
        raise ProtocolError("too_large", f"array {name!r} of shape {shape} is larger than a frame may be")
    return name, dtype, shape


def read_into(sock: socket.socket, buffer: bytearray | memoryview, deadline: float | None = None) -> None:
    """Fill ``buffer`` from ``sock``. With a ``deadline`` (``time.monotonic()``), the whole
    read must end by then: a peer that trickles bytes cannot hold the reader (socket.timeout)."""
    view, got, timeout = memoryview(buffer), 0, sock.gettimeout()
    try:
        while got < len(view):
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("frame deadline passed")
                sock.settimeout(left)
            n = sock.recv_into(view[got:], min(len(view) - got, 1 << 20))
            if not n:
                raise ConnectionError("connection closed mid-frame" if got or not len(view) else "connection closed")
            got += n
    finally:
        sock.settimeout(timeout)


def read_header(sock: socket.socket, max_frame: int = DEFAULT_MAX_FRAME, deadline: float | None = None,
                max_header: int = MAX_HEADER) -> tuple[dict, int]:
    """Read a frame's prefix and JSON header, but not its payload: (header, payload length).
    A server checks the token before it reads (and makes room for) the payload, and reads
    requests with ``max_header=MAX_REQUEST_HEADER``."""
    prefix = bytearray(PREFIX.size)
    read_into(sock, prefix, deadline)
    hlen, plen = parse_prefix(bytes(prefix), max_frame, max_header)
    head = bytearray(hlen)
    read_into(sock, head, deadline)
    return parse_header(head), plen


def read_payload(sock: socket.socket, header: dict, plen: int, max_frame: int = DEFAULT_MAX_FRAME,
                 deadline: float | None = None) -> dict[str, np.ndarray]:
    """Read a payload of ``plen`` bytes into one buffer and return the arrays that ``header``
    lists, as views into it. The layout is checked before a byte is read."""
    if payload_size(array_layout(header, max_frame)) != plen:
        raise ProtocolError("bad_header", "payload length does not match the listed arrays")
    payload = bytearray(plen)
    read_into(sock, payload, deadline)
    return decode_arrays(header, payload, max_frame)


def recv_message(sock: socket.socket, max_frame: int = DEFAULT_MAX_FRAME, deadline: float | None = None) -> Message:
    """Read one frame from ``sock``. Raises ConnectionError on EOF, ProtocolError on garbage."""
    header, plen = read_header(sock, max_frame, deadline)
    return Message(header, read_payload(sock, header, plen, max_frame, deadline))


def send_message(sock: socket.socket, header: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
    """Write one frame to ``sock``."""
    sock.sendall(encode(header, arrays))

"""The Sketch2Mesh wire protocol: one definition, used by the add-on and the model server.

It imports in Blender's Python (standard library and numpy only).

A frame, all integers little-endian::

    magic    4 bytes   b"S2M1"
    hlen     u32       length of the JSON header, in bytes
    plen     u64       length of the binary payload, in bytes
    header   hlen bytes of UTF-8 JSON, an object
    payload  plen bytes: the arrays that header["arrays"] lists, back to back

Arrays travel raw, never base64: each entry of ``header["arrays"]`` is
``{"name": str, "dtype": "<f4", "shape": [..]}`` and the payload holds their bytes in
that order.

Requests carry ``v`` (the protocol version, the integer 1), ``id`` (a request id of
printable ASCII), ``op`` and ``token``. A reader checks the token on the header before
it reads the payload (:func:`read_header`, :func:`read_payload`). Replies carry ``v``, ``id`` and ``kind``: ``progress`` (``message`` and
``fraction``, any number of them), then exactly one ``result`` or ``error``
(``error = {"code": .., "message": ..}``).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import stat
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
MAGIC = b"S2M1"
PREFIX = struct.Struct("<4sIQ")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 47631
DEFAULT_MAX_FRAME = 256 * 1024 * 1024
MAX_HEADER = 1024 * 1024
MAX_REQUEST_HEADER = 64 * 1024   # a request's header is read before its token is checked: keep it small
MAX_TOKEN = 256

OPS = ("ping", "reconstruct", "fit", "cancel", "shutdown")
REPLY_KINDS = ("progress", "result", "error")
DTYPES = ("<f4", "<f8", "<i4", "<i8", "<u1", "<u4")

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


# --- Sketch payloads -------------------------------------------------------------


def pack_strokes(view: str, strokes: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Pack one view's strokes, each an (N, 2) array of view-plane points, optionally
    with a third column of pressure, into ``<view>.points`` (N, 2) float32,
    ``<view>.pressure`` (N,) float32 and ``<view>.offsets`` (S + 1,) int32."""
    pts, pressure, offsets = [], [], [0]
    for stroke in strokes:
        s = np.asarray(stroke, dtype=np.float32).reshape(len(stroke), -1)
        pts.append(s[:, :2])
        pressure.append(s[:, 2] if s.shape[1] > 2 else np.ones(len(s), np.float32))
        offsets.append(offsets[-1] + len(s))
    points = np.concatenate(pts) if pts else np.zeros((0, 2), np.float32)
    press = np.concatenate(pressure) if pressure else np.zeros(0, np.float32)
    return {f"{view}.points": points, f"{view}.pressure": press, f"{view}.offsets": np.asarray(offsets, np.int32)}


def unpack_strokes(arrays: dict[str, np.ndarray], max_strokes: int = MAX_STROKES,
                   max_points: int = MAX_POINTS) -> dict[str, list[np.ndarray]]:
    """Inverse of :func:`pack_strokes` for every view present: view -> list of (N, 3)
    arrays of (u, v, pressure). Validates structure and size, not content (see
    :func:`check_strokes`); the sizes are checked before anything is copied."""
    present = [view for view in VIEW_NAMES if f"{view}.points" in arrays]
    strokes = sum(max(len(arrays.get(f"{view}.offsets", ())) - 1, 0) for view in present)
    points = sum(len(arrays[f"{view}.points"]) for view in present)
    _check_counts(strokes, points, max_strokes, max_points)
    out: dict[str, list[np.ndarray]] = {}
    for view in present:
        points = arrays[f"{view}.points"]
        offsets = arrays.get(f"{view}.offsets")
        pressure = arrays.get(f"{view}.pressure", np.ones(len(points), np.float32))
        if points.ndim != 2 or points.shape[1] != 2:
            raise ProtocolError("bad_input", f"{view}.points must have shape (N, 2)")
        if offsets is None or offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype.kind not in "iu":
            raise ProtocolError("bad_input", f"{view}.offsets must be a 1-D integer array")
        offsets = offsets.astype(np.int64)
        if offsets[0] != 0 or offsets[-1] != len(points) or np.any(np.diff(offsets) < 0):
            raise ProtocolError("bad_input", f"{view}.offsets must rise from 0 to the point count")
        if pressure.shape != (len(points),):
            raise ProtocolError("bad_input", f"{view}.pressure must have one value per point")
        merged = np.concatenate([points.astype(np.float32), pressure.astype(np.float32)[:, None]], axis=1)
        out[view] = [merged[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    return out


def _check_counts(strokes: int, points: int, max_strokes: int, max_points: int) -> None:
    if strokes > max_strokes:
        raise ProtocolError("bad_input", f"The sketch has {strokes} strokes, more than the {max_strokes} allowed; "
                                         "join or delete strokes.")
    if points > max_points:
        raise ProtocolError("bad_input", f"The sketch has {points} points, more than the {max_points} allowed; simplify the strokes.")


def check_strokes(strokes: dict[str, list[np.ndarray]], max_strokes: int = MAX_STROKES,
                  max_points: int = MAX_POINTS) -> None:
    """Reject sketches that cannot be reconstructed, with a sentence the user can act on.

    ``strokes`` maps a view name to its strokes, each an (N, 2+) array. Front or side
    alone is accepted (the server inflates it); the top view alone is not."""
    unknown = set(strokes) - set(VIEW_NAMES)
    if unknown:
        raise ProtocolError("bad_input", f"unknown view(s) {', '.join(sorted(unknown))}; expected front, side, top")
    drawn = [v for v in VIEW_NAMES if any(len(s) for s in strokes.get(v, []))]
    if not any(v in drawn for v in MAIN_VIEWS):
        where = "draw the object's outline on the Front layer, the Side layer or both"
        if drawn:
            raise ProtocolError("bad_input", f"Only the top view is drawn: {where}; the top view only adds to them.")
        raise ProtocolError("bad_input", f"The sketch is empty: {where}.")
    _check_counts(sum(len(strokes[v]) for v in strokes), sum(len(s) for v in strokes for s in strokes[v]),
                  max_strokes, max_points)
    for view in drawn:
        for stroke in strokes[view]:
            s = np.asarray(stroke)
            if s.size and not np.all(np.isfinite(s)):
                raise ProtocolError("bad_input", f"A {view} stroke has invalid (NaN or infinite) coordinates; redraw or delete it.")
        usable = [s for s in strokes[view] if len(s) >= 2]
        if not usable:
            raise ProtocolError("bad_input", f"The {view} view has only single-point strokes; draw lines, not dots.")
        pts = np.concatenate([np.asarray(s)[:, :2] for s in usable])
        if np.ptp(pts[:, 0]) <= 0 or np.ptp(pts[:, 1]) <= 0:
            raise ProtocolError("bad_input", f"The {view} strokes are a single straight line; draw the object's outline.")


# --- Mesh payloads (the ``fit`` op) -------------------------------------------------


def pack_mesh(vertices: np.ndarray, faces: np.ndarray) -> dict[str, np.ndarray]:
    """``mesh.vertices`` (V, 3) float32 world positions and ``mesh.faces`` (F, 3) int32."""
    return {"mesh.vertices": np.ascontiguousarray(vertices, np.float32).reshape(-1, 3),
            "mesh.faces": np.ascontiguousarray(faces, np.int32).reshape(-1, 3)}


def unpack_mesh(arrays: dict[str, np.ndarray], max_faces: int = MAX_FIT_FACES) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_mesh`, validated with :func:`check_mesh` (sizes before any copy)."""
    vertices, faces = arrays.get("mesh.vertices"), arrays.get("mesh.faces")
    if vertices is None or faces is None:
        raise ProtocolError("bad_input", "A fit request needs the arrays mesh.vertices and mesh.faces.")
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu":
        raise ProtocolError("bad_input", "mesh.vertices must be (V, 3) floats and mesh.faces (F, 3) integers.")
    _check_mesh_size(len(vertices), len(faces), max_faces)
    vertices, faces = vertices.astype(np.float32), faces.astype(np.int64)
    check_mesh(vertices, faces, max_faces)
    return vertices, faces


def _check_mesh_size(vertices: int, faces: int, max_faces: int) -> None:
    if faces < 4 or vertices < 4:
        raise ProtocolError("bad_input", "The mesh has no volume to fit (fewer than 4 faces); pick a closed mesh.")
    if vertices > MAX_MESH_VERTICES:
        raise ProtocolError("bad_input", f"The mesh has {vertices} vertices, more than the {MAX_MESH_VERTICES} "
                                         "Fit to strokes handles; decimate it first.")
    if faces > max_faces:
        raise ProtocolError("bad_input", f"The mesh has {faces} triangles, more than the {max_faces} faces Fit to "
                                         "strokes takes; decimate it first (Modifiers > Decimate).")


def check_mesh(vertices: np.ndarray, faces: np.ndarray, max_faces: int = MAX_FIT_FACES) -> None:
    """Reject meshes that cannot be fitted, with a sentence the user can act on."""
    _check_mesh_size(len(vertices), len(faces), max_faces)
    if not np.all(np.isfinite(vertices)):
        raise ProtocolError("bad_input", "The mesh has invalid (NaN or infinite) vertex positions.")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ProtocolError("bad_input", "The mesh's faces refer to vertices it does not have.")


def mesh_defects(faces: np.ndarray) -> str | None:
    """A warning sentence when the mesh is not closed and manifold (every edge on exactly
    two faces), else None. Fitting still runs: open edges simply count as outline."""
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    open_edges, shared = int((counts == 1).sum()), int((counts > 2).sum())
    if not open_edges and not shared:
        return None
    parts = ([f"{open_edges} open edge(s)"] if open_edges else []) + ([f"{shared} edge(s) on more than two faces"] if shared else [])
    return (f"The mesh is not closed and manifold ({', '.join(parts)}); the fit may tear or fold there. "
            "Use Mesh > Clean Up or a remesh first for best results.")


def describe_fit(fit: dict) -> str:
    """One line from a fit summary (the ``fit`` entry of a result): 'silhouette IoU front
    0.912 -> 0.991, side ...; 0 flipped faces, 87 iterations'."""
    before, after = dict(fit.get("iou_before") or {}), dict(fit.get("iou_after") or {})
    ious = ", ".join(f"{view} {float(before[view]):.3f} -> {float(after.get(view, 0.0)):.3f}" for view in before)
    if fit.get("already_matched"):
        return (f"silhouette IoU {ious or 'not measured'}: the mesh already matches the strokes as closely as a "
                "drawing can tell, so nothing was moved")
    return (f"silhouette IoU {ious or 'not measured'}; {int(fit.get('flipped_faces', 0))} flipped faces, "
            f"{int(fit.get('iterations', 0))} iterations")


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


# --- Token file --------------------------------------------------------------------


class TokenFileError(OSError):
    """A token file that would not be private: its folder is shared, or its path is a link."""


def runtime_dir() -> Path:
    """Per-user folder for the server's token files (``SKETCH2MESH_RUNTIME_DIR`` overrides)."""
    if os.environ.get("SKETCH2MESH_RUNTIME_DIR"):
        return Path(os.environ["SKETCH2MESH_RUNTIME_DIR"])
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "sketch2mesh"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "sketch2mesh"
    return Path(os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache") / "sketch2mesh"


def token_path(port: int, folder: Path | None = None) -> Path:
    """Where the server listening on ``port`` keeps its token (in ``folder``, by default the runtime folder)."""
    return Path(folder or runtime_dir()) / f"server-{port}.token"


def private_dir(folder: Path, tighten: bool = False) -> Path:
    """``folder``, created 0700 if missing; refused (:class:`TokenFileError`) if another
    user owns it or others may write to it, since they could then swap the token.

    With ``tighten`` (for the folders Sketch2Mesh itself owns, which a umask of 002 leaves
    group-writable) a folder of this user's that others may write to is made 0700
    instead, unless it is a shared sticky folder such as /tmp."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if sys.platform == "win32":
        return folder
    info = folder.stat()
    if info.st_uid != os.getuid():
        raise TokenFileError(f"The token folder {folder} belongs to another user; choose a folder of your own.")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        if not tighten or info.st_mode & stat.S_ISVTX:
            raise TokenFileError(f"The token folder {folder} is one that others can write to; choose a private "
                                 "folder (mode 0700).")
        folder.chmod(0o700)
    return folder


def write_token(path: Path, tighten: bool = False) -> str:
    """Create a fresh random token in ``path``, readable by this user only (mode 0600).

    It is written to a new file with an unguessable name in the same private folder and
    renamed over ``path`` in one step, so no one sees a half-written token and no
    planted file or link is ever opened. A ``path`` that is a symlink is refused;
    ``tighten`` is :func:`private_dir`'s."""
    path = Path(path)
    private_dir(path.parent, tighten)
    if path.is_symlink():
        raise TokenFileError(f"The token file {path} is a symbolic link; remove it or choose another --token-file.")
    token = secrets.token_urlsafe(32)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)   # O_EXCL, mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(token)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return token


def read_token(path: Path) -> str:
    """Read a token written by :func:`write_token`; '' if there is none, or if the file is
    a link, or not this user's, or readable by others (then it was not ours)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return ""
    with os.fdopen(fd) as f:
        info = os.fstat(f.fileno())
        if sys.platform != "win32" and (info.st_uid != os.getuid() or info.st_mode & 0o077):
            return ""
        return f.read(1024).strip()

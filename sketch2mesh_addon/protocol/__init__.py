"""The Sketch2Mesh wire protocol: one definition, used by the add-on and the model server.

It imports in Blender's Python (standard library and numpy only, never bpy). Its parts:

- :mod:`.framing`: a frame (prefix, JSON header, raw arrays), encoded, decoded and read
  from a socket within a deadline;
- :mod:`.vocabulary`: the ops, request and reply headers, the backends, details, views and
  limits both sides share, and the checks of a request's parameters;
- :mod:`.checks`: the sketch and mesh payloads, checked with sentences a user can act on,
  and the fit report's wording;
- :mod:`.token_file`: where the server's access token lives and how it stays private.

Every public name is re-exported here, so callers write ``protocol.encode``,
``protocol.check_strokes`` or ``protocol.write_token`` whichever part holds it.
"""

from __future__ import annotations

from .checks import (check_mesh, check_strokes, describe_fit, fit_report, mesh_defects, mesh_warning, pack_mesh,
                     pack_strokes, unpack_mesh, unpack_strokes)
from .framing import (DEFAULT_HOST, DEFAULT_MAX_FRAME, DEFAULT_PORT, DTYPES, MAGIC, MAX_HEADER, MAX_REQUEST_HEADER,
                      PREFIX, Message, ProtocolError, array_layout, decode, decode_arrays, encode, parse_header,
                      parse_prefix, payload_size, read_header, read_into, read_payload, recv_message, send_message)
from .token_file import TokenFileError, private_dir, read_token, runtime_dir, token_path, write_token
from .vocabulary import (BACKENDS, DEFAULT_BACKEND, DEFAULT_ROUNDNESS, DETAILS, MAIN_VIEWS, MAX_FIT_FACES,
                         MAX_FIT_ITERATIONS, MAX_MESH_VERTICES, MAX_POINTS, MAX_STROKES, MAX_TOKEN, OPS,
                         PROTOCOL_VERSION, REPLY_KINDS, ROUNDNESS_RANGE, VIEW_NAMES, check_choice, check_float,
                         check_int, check_request, error_reply, make_reply, make_request, request_id_of,
                         request_token, tokens_match)

__all__ = [
    "BACKENDS", "DEFAULT_BACKEND", "DEFAULT_HOST", "DEFAULT_MAX_FRAME", "DEFAULT_PORT", "DEFAULT_ROUNDNESS", "DETAILS",
    "DTYPES", "MAGIC", "MAIN_VIEWS", "MAX_FIT_FACES", "MAX_FIT_ITERATIONS", "MAX_HEADER", "MAX_MESH_VERTICES",
    "MAX_POINTS", "MAX_REQUEST_HEADER", "MAX_STROKES", "MAX_TOKEN", "OPS", "PREFIX", "PROTOCOL_VERSION",
    "REPLY_KINDS", "ROUNDNESS_RANGE", "VIEW_NAMES",
    "Message", "ProtocolError", "TokenFileError",
    "array_layout", "check_choice", "check_float", "check_int", "check_mesh", "check_request", "check_strokes",
    "decode", "decode_arrays", "describe_fit", "encode", "error_reply", "fit_report", "make_reply", "make_request",
    "mesh_defects", "mesh_warning", "pack_mesh", "pack_strokes", "parse_header", "parse_prefix", "payload_size", "private_dir",
    "read_header", "read_into", "read_payload", "read_token", "recv_message", "request_id_of", "request_token",
    "runtime_dir", "send_message", "token_path", "tokens_match", "unpack_mesh", "unpack_strokes", "write_token",
]

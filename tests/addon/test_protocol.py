"""Unit tests of the wire protocol. They run in the bpy environments, which have no
torch: the protocol must import with the standard library and numpy alone."""

import json
import socket
import stat
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sketch2mesh_addon import protocol
from sketch2mesh_addon.protocol import ProtocolError


def roundtrip(header, arrays=None):
    frame = protocol.encode(header, arrays)
    hlen, plen = protocol.parse_prefix(frame[: protocol.PREFIX.size])
    head = frame[protocol.PREFIX.size: protocol.PREFIX.size + hlen]
    return protocol.decode(head, frame[protocol.PREFIX.size + hlen:])


def test_protocol_imports_without_torch_or_bpy():
    # In a fresh interpreter: a session that also runs the server's tests has torch loaded already.
    code = ("import sys, sketch2mesh_addon.protocol as p; assert p.encode and p.write_token and p.check_strokes; "
            "print(sorted({'torch', 'open3d', 'bpy', 'model_server'} & {m.split('.')[0] for m in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(protocol.__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_arrays_roundtrip_raw_and_little_endian():
    arrays = {"v": np.arange(12, dtype=np.float32).reshape(4, 3), "f": np.array([[0, 1, 2]], dtype=">i4"),
              "empty": np.zeros((0, 2), np.float32)}
    frame = protocol.encode({"op": "x"}, arrays)
    assert np.arange(12, dtype="<f4").tobytes() in frame  # raw, not base64
    msg = roundtrip({"op": "x"}, arrays)
    assert msg.header["op"] == "x"
    np.testing.assert_array_equal(msg.arrays["v"], arrays["v"])
    assert msg.arrays["f"].dtype.str == "<i4" and msg.arrays["f"].tolist() == [[0, 1, 2]]
    assert msg.arrays["empty"].shape == (0, 2)


def test_frames_roundtrip_over_a_socket():
    a, b = socket.socketpair()
    with a, b:
        protocol.send_message(a, protocol.make_request("ping", "t", "r1"), {"x": np.ones(3, np.float64)})
        msg = protocol.recv_message(b)
    assert protocol.check_request(msg.header) == ("r1", "ping", "t", {})
    assert msg.arrays["x"].tolist() == [1.0, 1.0, 1.0]


def test_eof_mid_frame_is_a_connection_error():
    a, b = socket.socketpair()
    with b:
        a.sendall(protocol.encode({"op": "ping"})[:10])
        a.close()
        with pytest.raises(ConnectionError):
            protocol.recv_message(b)


@pytest.mark.parametrize("prefix, code", [
    (b"GET / HTTP/1.1\r\n", "bad_frame"),
    (struct.pack("<4sIQ", b"S2M1", 0, 0), "too_large"),
    (struct.pack("<4sIQ", b"S2M1", protocol.MAX_HEADER + 1, 0), "too_large"),
    (struct.pack("<4sIQ", b"S2M1", 10, 2**40), "too_large"),
])
def test_bad_prefixes_are_rejected(prefix, code):
    with pytest.raises(ProtocolError) as err:
        protocol.parse_prefix(prefix)
    assert err.value.code == code


def test_max_frame_is_configurable():
    frame = protocol.encode({"op": "x"}, {"a": np.zeros(1000, np.float32)})
    protocol.parse_prefix(frame[:16], max_frame=len(frame))
    with pytest.raises(ProtocolError, match="exceeds"):
        protocol.parse_prefix(frame[:16], max_frame=len(frame) - 1)


@pytest.mark.parametrize("head, payload", [
    (b"\xff\xfe", b""),
    (b"[1, 2]", b""),
    (b'{"a": NaN}', b""),
    (b'{"arrays": 3}', b""),
    (b'{"arrays": [{"name": "a", "dtype": "object", "shape": [1]}]}', b"x" * 8),
    (b'{"arrays": [{"name": "a", "dtype": "<f4", "shape": [-1]}]}', b""),
    (b'{"arrays": [{"name": "a", "dtype": "<f4", "shape": [1,1,1,1,1]}]}', b"x" * 4),
    (b'{"arrays": [{"name": "a", "dtype": "<f4", "shape": [3]}]}', b"x" * 8),
    (b'{"arrays": [{"name": "a", "dtype": "<f4", "shape": [1]}]}', b"x" * 8),
    (b'{"arrays": [{"name": "a", "dtype": "<u1", "shape": [1]}, {"name": "a", "dtype": "<u1", "shape": [1]}]}', b"xx"),
])
def test_malformed_headers_are_rejected(head, payload):
    with pytest.raises(ProtocolError):
        protocol.decode(head, payload)


@pytest.mark.parametrize("header, code", [
    ({"v": 99, "id": "a", "op": "ping", "token": "t"}, "bad_version"),
    ({"v": 1, "id": 3, "op": "ping", "token": "t"}, "bad_request"),
    ({"v": 1, "id": "a" * 65, "op": "ping", "token": "t"}, "bad_request"),
    ({"v": 1, "id": "a", "op": "rm -rf", "token": "t"}, "bad_request"),
    ({"v": 1, "id": "a", "op": "ping"}, "bad_token"),
    ({"v": 1, "id": "a", "op": "ping", "token": "t", "params": []}, "bad_request"),
])
def test_request_fields_are_validated(header, code):
    with pytest.raises(ProtocolError) as err:
        protocol.check_request(header)
    assert err.value.code == code


@pytest.mark.parametrize("params, expected", [
    ({}, protocol.DEFAULT_ROUNDNESS), ({"roundness": 0}, 0.0), ({"roundness": 0.25}, 0.25), ({"roundness": 1}, 1.0),
])
def test_roundness_is_a_number_from_0_to_1(params, expected):
    value = protocol.check_float(params, "roundness", *protocol.ROUNDNESS_RANGE, protocol.DEFAULT_ROUNDNESS)
    assert value == expected and type(value) is float


@pytest.mark.parametrize("value", [-0.01, 1.01, 2, float("nan"), float("inf"), -float("inf"), True, "0.5", None,
                                   [0.5], 10 ** 400])
def test_bad_roundness_is_refused_with_a_sentence(value):
    with pytest.raises(ProtocolError) as err:
        protocol.check_float({"roundness": value}, "roundness", *protocol.ROUNDNESS_RANGE, protocol.DEFAULT_ROUNDNESS)
    assert err.value.code == "bad_request"
    assert err.value.message.startswith("roundness must be a number from 0 to 1, not ")


def test_the_default_backend_is_one_of_the_backends():
    assert protocol.DEFAULT_BACKEND in protocol.BACKENDS
    assert protocol.ROUNDNESS_RANGE[0] <= protocol.DEFAULT_ROUNDNESS <= protocol.ROUNDNESS_RANGE[1]


def square(cx=0.0, cy=0.0, r=0.5, n=40):
    t = np.linspace(0, 2 * np.pi, n)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def test_strokes_pack_and_unpack():
    strokes = [square(), np.array([[0.0, 0.0, 0.5], [1.0, 1.0, 0.25]])]
    arrays = protocol.pack_strokes("front", strokes)
    assert arrays["front.offsets"].tolist() == [0, 40, 42]
    back = protocol.unpack_strokes(roundtrip({}, arrays).arrays)
    assert len(back["front"]) == 2
    np.testing.assert_allclose(back["front"][0][:, :2], strokes[0], atol=1e-6)
    assert back["front"][1][:, 2].tolist() == [0.5, 0.25]


def test_unpack_rejects_inconsistent_offsets():
    arrays = protocol.pack_strokes("side", [square()])
    arrays["side.offsets"] = np.array([0, 41], np.int32)
    with pytest.raises(ProtocolError, match="offsets"):
        protocol.unpack_strokes(arrays)


@pytest.mark.parametrize("strokes, words", [
    ({}, "The sketch is empty: draw the object's outline on the Front layer, the Side layer or both"),
    ({"front": [], "side": []}, "empty"),
    ({"front": [], "side": [], "top": [square()]}, "Only the top view is drawn: .*Front layer, the Side layer or both"),
    ({"side": [np.array([[0.0, 0.0]])], "top": [square()]}, "single-point"),
    ({"front": [square()], "side": [np.array([[0.0, np.nan], [1.0, 1.0]])]}, "NaN"),
    ({"front": [square()], "side": [np.array([[0.0, 0.0]])] * 3}, "single-point"),
    ({"front": [square()], "side": [np.array([[0.0, 0.0], [1.0, 0.0]])]}, "straight line"),
    ({"front": [square(n=60_000)], "side": [square(n=50_000)]}, "more than the 100000"),
    ({"front": [square()], "side": [square()], "back": [square()]}, "unknown view"),
])
def test_unusable_sketches_get_a_sentence(strokes, words):
    with pytest.raises(ProtocolError, match=words) as err:
        protocol.check_strokes(strokes)
    assert err.value.code == "bad_input"


def test_good_sketch_passes():
    protocol.check_strokes({"front": [square()], "side": [square(), np.array([[0.0, 0.0]])], "top": []})


@pytest.mark.parametrize("strokes", [
    {"front": [square()]},
    {"front": [square()], "side": []},
    {"side": [square()]},
    {"front": [], "side": [square()], "top": [square()]},
], ids=["front", "front, empty side", "side", "side and top"])
def test_one_main_view_alone_passes(strokes):
    """One of front and side is enough: the server inflates it (a second view gives a truer shape)."""
    protocol.check_strokes(strokes)


def test_main_views_are_front_and_side():
    assert protocol.MAIN_VIEWS == ("front", "side") and set(protocol.MAIN_VIEWS) < set(protocol.VIEW_NAMES)


def test_token_file_is_private(tmp_path):
    path = tmp_path / "deep" / "server.token"
    token = protocol.write_token(path)
    assert len(token) >= 32 and protocol.read_token(path) == token
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert protocol.write_token(path) != token
    assert protocol.read_token(tmp_path / "missing") == ""
    assert protocol.tokens_match(token, token) and not protocol.tokens_match(token, token + "x")


def test_error_reply_is_structured():
    header = protocol.error_reply("r", "bad_input", "Draw more.")
    assert json.loads(json.dumps(header))["error"] == {"code": "bad_input", "message": "Draw more."}


def tetrahedron() -> tuple[np.ndarray, np.ndarray]:
    return (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32),
            np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]], np.int32))


def test_mesh_round_trips_through_a_frame():
    vertices, faces = tetrahedron()
    message = roundtrip({"op": "fit"}, protocol.pack_mesh(vertices, faces))
    got_vertices, got_faces = protocol.unpack_mesh(message.arrays)
    np.testing.assert_array_equal(got_vertices, vertices)
    np.testing.assert_array_equal(got_faces, faces)


@pytest.mark.parametrize("vertices, faces, words", [
    (np.zeros((3, 3)), np.array([[0, 1, 2]]), "fewer than 4"),
    (np.full((4, 3), np.nan), tetrahedron()[1], "NaN"),
    (tetrahedron()[0], tetrahedron()[1] + 1, "refer to vertices"),
])
def test_unusable_meshes_are_refused_with_a_sentence(vertices, faces, words):
    with pytest.raises(protocol.ProtocolError, match=words) as error:
        protocol.check_mesh(vertices, faces)
    assert error.value.code == "bad_input"


def test_mesh_defects_names_open_and_non_manifold_edges():
    vertices, faces = tetrahedron()
    assert protocol.mesh_defects(faces) is None
    assert "3 open edge(s)" in protocol.mesh_defects(faces[1:])
    assert "more than two faces" in protocol.mesh_defects(np.concatenate([faces, faces[:1]]))

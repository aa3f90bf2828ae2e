"""Protocol fuzzing: thousands of generated frames against a real server process (issue 11).

Every frame goes over its own connection. Whatever a frame holds, the server answers
with an error reply or hangs up, and afterwards it is alive, has not grown, and still
reconstructs a real sketch correctly. The server counts the frames it was sent; the last
test tops them up to ``FRAMES`` with a seeded barrage of its own, so it also runs alone.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_harness import Server, raw_frame, sketch_arrays

from sketch2mesh_addon import protocol

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads the server's memory from /proc")

EXAMPLES = 260          # per strategy below; 8 strategies: over 2,000 frames a run
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FRAMES = 2000           # the least number of frames the server has taken when the last test checks it


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("fuzz"))
    s.rss_before = s.warm_up()
    s.frames_sent = 0
    yield s
    s.close()


def send(server: Server, frame: bytes) -> None:
    """One frame on its own connection; the answer, if any, must be an error reply."""
    server.frames_sent += 1
    reply = server.send_raw(frame, timeout=15)
    if reply is not None:
        assert reply.header.get("kind") == "error", reply.header
        assert reply.header["error"]["code"] and reply.header["error"]["message"]


def request(server: Server, **fields) -> dict:
    return protocol.make_request("reconstruct", server.token, "fuzz", {"backend": "hull", "detail": "low"}) | fields


def frame_of(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """A well-framed request whose arrays are listed honestly."""
    specs = [{"name": k, "dtype": a.dtype.str, "shape": list(a.shape)} for k, a in arrays.items()]
    payload = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values())
    return raw_frame(header | {"arrays": specs}, payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@FUZZ
@given(st.binary(min_size=0, max_size=300))
def test_random_bytes(server, data):
    send(server, data)


@FUZZ
@given(st.binary(min_size=0, max_size=300))
def test_random_bytes_after_the_magic(server, data):
    send(server, protocol.MAGIC + data)


@FUZZ
@given(st.integers(1, 2**32 - 1), st.integers(0, 2**64 - 1))
def test_huge_length_prefixes(server, hlen, plen):
    send(server, protocol.PREFIX.pack(protocol.MAGIC, hlen, plen) + b"{}")


@FUZZ
@given(st.data())
def test_truncated_frames(server, data):
    frame = protocol.encode(request(server), sketch_arrays())
    send(server, frame[:data.draw(st.integers(0, len(frame) - 1))])


@FUZZ
@given(st.sampled_from(["v", "id", "op", "token", "params", "arrays"]), json_values)
def test_valid_framing_with_wrong_types(server, key, value):
    header = request(server) | {key: value}
    if key == "arrays":
        send(server, raw_frame(header))
    elif key == "params" and isinstance(value, dict):
        send(server, frame_of(header | {"params": {"backend": value}}, sketch_arrays()))
    else:
        send(server, frame_of(header, {"front.points": np.zeros((1, 2), np.float32)}))


@FUZZ
@given(json_values, st.text(max_size=80))
def test_wrong_versions_and_tokens(server, version, token):
    if version != protocol.PROTOCOL_VERSION or isinstance(version, bool):
        send(server, frame_of(request(server, v=version), sketch_arrays()))
    if token != server.token:
        send(server, frame_of(request(server, token=token), sketch_arrays()))


@FUZZ
@given(st.sampled_from(["front.points", "front.offsets", "side.points", "mesh.faces"]),
       st.lists(st.integers(0, 2**31 - 1), min_size=0, max_size=5), st.sampled_from(protocol.DTYPES),
       st.integers(0, 64))
def test_shapes_that_do_not_match_their_bytes(server, name, shape, dtype, nbytes):
    header = request(server) | {"arrays": [{"name": name, "dtype": dtype, "shape": shape}]}
    send(server, raw_frame(header, bytes(nbytes)))


@FUZZ
@given(st.sampled_from([np.nan, np.inf, -np.inf]), st.integers(0, 119), st.sampled_from(["front", "side"]),
       st.sampled_from(["points", "pressure"]))
def test_nan_and_inf_in_the_strokes(server, value, index, view, what):
    arrays = {k: np.array(a) for k, a in sketch_arrays().items()}
    arrays[f"{view}.{what}"].reshape(-1)[index] = value
    send(server, frame_of(request(server), arrays))


def barrage(server: Server, count: int, seed: int = 0) -> None:
    """``count`` malformed frames of the strategies' kinds, from a seeded generator: random
    bytes with and without the magic, huge length prefixes, truncated requests, NaN strokes."""
    rng = np.random.default_rng(seed)
    whole = protocol.encode(request(server), sketch_arrays())
    nan_arrays = {k: np.array(a) for k, a in sketch_arrays().items()}
    nan_arrays["front.points"].reshape(-1)[0] = np.nan
    kinds = [
        lambda: rng.bytes(int(rng.integers(0, 300))),
        lambda: protocol.MAGIC + rng.bytes(int(rng.integers(0, 300))),
        lambda: protocol.PREFIX.pack(protocol.MAGIC, int(rng.integers(1, 2**32)),
                                     int(rng.integers(0, 2**64, dtype=np.uint64))) + b"{}",
        lambda: whole[:int(rng.integers(0, len(whole)))],
        lambda: frame_of(request(server), nan_arrays),
    ]
    for i in range(count):
        send(server, kinds[i % len(kinds)]())


def test_after_the_fuzzing_the_server_is_alive_small_and_still_correct(server):
    if server.frames_sent < FRAMES:     # run alone or after only some of the tests above
        barrage(server, FRAMES - server.frames_sent)
    assert server.alive()
    assert "Traceback" not in server.log_file.read_text(), "a frame reached an unexpected failure"
    grown = server.rss_mb() - server.rss_before
    assert grown < 50, f"the server grew by {grown:.0f} MB"
    _, msg = server.call("reconstruct", {"backend": "hull", "detail": "low"}, sketch_arrays())
    assert msg.header["kind"] == "result", msg.header
    lo, hi = msg.arrays["vertices"].min(0), msg.arrays["vertices"].max(0)
    np.testing.assert_allclose((lo + hi) / 2, [2.0, -1.0, 1.0], atol=0.05)
    np.testing.assert_allclose(hi - lo, [1.2, 0.8, 1.8], atol=0.08)

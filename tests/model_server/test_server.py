"""The model server as users meet it: a real process on a real loopback socket."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from server_harness import REPO, Server, ellipsoid_mesh, raw_frame, ring, sketch_arrays

from sketch2mesh_addon import protocol


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("server"))
    yield s
    s.close()


def test_ping_answers_and_token_file_is_private(server):
    _, msg = server.call("ping")
    assert msg.header["kind"] == "result" and msg.header["result"]["protocol"] == protocol.PROTOCOL_VERSION
    if sys.platform != "win32":
        assert server.token_file.stat().st_mode & 0o077 == 0


def test_reconstruct_streams_progress_and_returns_a_world_space_mesh(server):
    progress, msg = server.call("reconstruct", {"backend": "hull", "detail": "low"}, sketch_arrays())
    assert msg.header["kind"] == "result", msg.header
    assert progress and all(0.0 <= p["fraction"] <= 1.0 and p["message"] for p in progress)
    verts, faces = msg.arrays["vertices"], msg.arrays["faces"]
    assert verts.shape[1] == 3 and faces.shape[1] == 3 and faces.max() < len(verts)
    lo, hi = verts.min(0), verts.max(0)
    np.testing.assert_allclose((lo + hi) / 2, [2.0, -1.0, 1.0], atol=0.05)
    np.testing.assert_allclose(hi - lo, [1.2, 0.8, 1.8], atol=0.08)
    summary = msg.header["result"]
    assert summary["vertices"] == len(verts) and summary["backend"] == "hull"
    assert not any("truer shape" in note for note in summary["notes"])
    assert {"rasterize", "predict", "fuse", "total"} <= set(summary["timings_s"])


@pytest.mark.parametrize("view", ["front", "side"])
def test_one_view_alone_is_inflated_and_the_result_says_a_second_view_helps(server, view):
    arrays = sketch_arrays(side=[]) if view == "front" else sketch_arrays(front=[])
    _, msg = server.call("reconstruct", {"backend": "hull", "detail": "low"}, arrays)
    assert msg.header["kind"] == "result", msg.header
    verts, faces = msg.arrays["vertices"], msg.arrays["faces"]
    assert len(faces) > 100 and faces.max() < len(verts)
    lo, hi = verts.min(0), verts.max(0)
    # The drawn view's axes overlay its strokes; the unseen axis (y for the front, x for the
    # side), which strokes do not carry, is inflated symmetrically about 0.
    drawn, unseen = ([0, 2], 1) if view == "front" else ([1, 2], 0)
    centre, size = ([2.0, 1.0], [1.2, 1.8]) if view == "front" else ([-1.0, 1.0], [0.8, 1.8])
    np.testing.assert_allclose((lo + hi)[drawn] / 2, centre, atol=0.05)
    np.testing.assert_allclose((hi - lo)[drawn], size, atol=0.08)
    assert abs(lo[unseen] + hi[unseen]) < 0.05 and 0.2 < hi[unseen] < min(size) / 2 + 0.05
    notes = msg.header["result"]["notes"]
    missing = "side" if view == "front" else "front"
    assert any("truer shape" in note and missing in note for note in notes), notes


@pytest.mark.parametrize("arrays, code", [
    (protocol.pack_strokes("top", [ring(0, 0, 0.5, 0.5)]), "bad_input"),
    (protocol.pack_strokes("front", []) | protocol.pack_strokes("side", []), "bad_input"),
    (sketch_arrays(side=[np.array([[0.0, np.nan], [1.0, 1.0]])]), "bad_input"),
    (sketch_arrays(side=[np.array([[0.5, 0.5]])]), "bad_input"),
    (sketch_arrays(front=[ring(0, 0, 1, 1, 100_001)]), "bad_input"),
    ({"front.points": np.zeros((3, 3), np.float32)}, "bad_input"),
])
def test_bad_sketches_get_an_error_and_the_server_keeps_serving(server, arrays, code):
    _, msg = server.call("reconstruct", {"backend": "hull"}, arrays)
    assert msg.header["kind"] == "error" and msg.header["error"]["code"] == code
    assert msg.header["error"]["message"]
    assert server.alive()


def test_the_round_backend_is_the_default_over_the_socket(server):
    _, msg = server.call("reconstruct", {"detail": "low"}, sketch_arrays())
    assert msg.header["kind"] == "result", msg.header
    assert msg.header["result"]["backend"] == "round"
    lo, hi = msg.arrays["vertices"].min(0), msg.arrays["vertices"].max(0)
    np.testing.assert_allclose((lo + hi) / 2, [2.0, -1.0, 1.0], atol=0.05)


@pytest.mark.parametrize("params, code", [
    ({"backend": "magic"}, "bad_request"),
    ({"detail": 3}, "bad_request"),
    ({"refine": -1}, "bad_request"),
    ({"refine": protocol.MAX_FIT_ITERATIONS + 1}, "bad_request"),
    ({"backend": "round", "roundness": 2}, "bad_request"),
    ({"backend": "round", "roundness": -0.5}, "bad_request"),
    ({"backend": "round", "roundness": "1"}, "bad_request"),
    ({"backend": "round", "roundness": True}, "bad_request"),
    ({"backend": "round", "roundness": None}, "bad_request"),
])
def test_bad_parameters_are_refused(server, params, code):
    _, msg = server.call("reconstruct", params, sketch_arrays())
    assert msg.header["error"]["code"] == code, msg.header
    assert server.alive()


def _volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (vertices[faces[:, i]].astype(np.float64) for i in range(3))
    return abs(float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum()) / 6.0)


def test_the_round_backend_takes_its_roundness_from_the_wire(server):
    volumes = {}
    for roundness in (0.0, 1):
        _, msg = server.call("reconstruct", {"backend": "round", "roundness": roundness, "detail": "low"},
                             sketch_arrays())
        assert msg.header["kind"] == "result", msg.header
        assert msg.header["result"]["backend"] == "round"
        lo, hi = msg.arrays["vertices"].min(0), msg.arrays["vertices"].max(0)
        np.testing.assert_allclose((lo + hi) / 2, [2.0, -1.0, 1.0], atol=0.05)
        np.testing.assert_allclose(hi - lo, [1.2, 0.8, 1.8], atol=0.08)
        volumes[roundness] = _volume(msg.arrays["vertices"], msg.arrays["faces"])
    # Ellipses fill pi/4 of the rectangles they are inscribed in; the outlines stay as drawn.
    assert 0.7 < volumes[1] / volumes[0.0] < 0.87, volumes


def test_an_infinite_roundness_is_refused(server):
    header = protocol.make_request("reconstruct", server.token, "inf", {"backend": "round", "roundness": 0.25})
    frame = protocol.encode(header, sketch_arrays())
    hlen, _ = protocol.parse_prefix(frame[:protocol.PREFIX.size])
    head = frame[protocol.PREFIX.size:protocol.PREFIX.size + hlen]
    assert head.count(b'"roundness":0.25') == 1
    reply = server.send_raw(raw_frame(head.replace(b'"roundness":0.25', b'"roundness":1e400'),
                                      frame[protocol.PREFIX.size + hlen:]))
    assert reply is not None and reply.header["error"]["code"] == "bad_request", reply and reply.header
    assert "roundness" in reply.header["error"]["message"]
    assert server.alive()


def test_fit_streams_live_vertices_and_returns_the_fitted_mesh(server):
    vertices, faces = ellipsoid_mesh()
    progress, msg = server.call("fit", {"iterations": 60}, sketch_arrays() | protocol.pack_mesh(vertices, faces))
    assert msg.header["kind"] == "result", msg.header
    fit = msg.header["result"]["fit"]
    assert all(fit["iou_after"][v] > fit["iou_before"][v] + 0.1 and fit["iou_after"][v] > 0.95 for v in ("front", "side"))
    assert msg.header["result"]["warnings"] == [] and fit["flipped_faces"] == 0
    fitted = msg.arrays["vertices"]
    assert fitted.shape == vertices.shape and np.isfinite(fitted).all()
    lo, hi = fitted.min(0), fitted.max(0)
    np.testing.assert_allclose(hi - lo, [1.2, 0.8, 1.8], atol=0.08)      # grown back onto the strokes
    live = [p for p in progress if p.get("arrays")]
    assert live and all(a["shape"] == [len(vertices), 3] for p in live for a in p["arrays"])
    assert server.alive()


def test_fit_warns_about_an_open_mesh(server):
    vertices, faces = ellipsoid_mesh(subdivisions=2)
    _, msg = server.call("fit", {"iterations": 3}, sketch_arrays() | protocol.pack_mesh(vertices, faces[1:]))
    assert msg.header["kind"] == "result", msg.header
    assert "open edge" in msg.header["result"]["warnings"][0]


@pytest.mark.parametrize("mesh, code", [
    ({}, "bad_input"),
    (protocol.pack_mesh(np.full((12, 3), np.nan), np.zeros((20, 3), np.int32)), "bad_input"),
    (protocol.pack_mesh(np.zeros((12, 3)), np.full((20, 3), 99)), "bad_input"),
    (protocol.pack_mesh(np.zeros((3, 3)), np.array([[0, 1, 2]])), "bad_input"),
    ({"mesh.vertices": np.zeros((12, 2), np.float32), "mesh.faces": np.zeros((20, 3), np.int32)}, "bad_input"),
])
def test_bad_fit_meshes_are_refused(server, mesh, code):
    _, msg = server.call("fit", {"iterations": 5}, sketch_arrays() | mesh)
    assert msg.header["error"]["code"] == code and msg.header["error"]["message"], msg.header
    assert server.alive()


def test_bad_fit_parameters_and_sketches_are_refused(server):
    mesh = protocol.pack_mesh(*ellipsoid_mesh(subdivisions=1))
    for params, arrays in [({"iterations": 0}, sketch_arrays()), ({"iterations": "many"}, sketch_arrays()),
                           ({}, protocol.pack_strokes("top", [ring(0, 0, 0.5, 0.5)]))]:
        _, msg = server.call("fit", params, arrays | mesh)
        assert msg.header["kind"] == "error", msg.header
    assert server.alive()


def test_cancelled_fit_answers_with_the_best_shape_so_far(server):
    vertices, faces = ellipsoid_mesh()
    outcome = {}

    def run():
        outcome["progress"], outcome["msg"] = server.call(
            "fit", {"iterations": 5000}, sketch_arrays() | protocol.pack_mesh(vertices, faces), request_id="fit-job")

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "fit-job" not in server.call("ping")[1].header["result"]["jobs"]:
        time.sleep(0.01)
    time.sleep(1.0)
    assert server.call("cancel", {"target": "fit-job"})[1].header["result"]["cancelled"]
    worker.join(60)
    msg = outcome["msg"]
    assert msg.header["kind"] == "result", msg.header
    assert msg.header["result"]["fit"]["cancelled"] and msg.header["result"]["fit"]["iterations"] < 5000
    assert msg.arrays["vertices"].shape == vertices.shape
    assert server.alive()


def test_reconstruct_with_refine_reports_the_fit(server):
    _, msg = server.call("reconstruct", {"backend": "hull", "detail": "low", "refine": 5}, sketch_arrays())
    assert msg.header["kind"] == "result", msg.header
    result = msg.header["result"]
    fit = result["fit"]             # a mesh that already matches its drawing is left as it is
    assert fit["iterations"] == (0 if fit["already_matched"] else 5) and result["timings_s"]["refine"] > 0
    assert set(result["fit"]["iou_after"]) == {"front", "side"}


def test_wrong_token_is_refused(server):
    _, msg = server.call("ping", token="not-the-token")
    assert msg.header["error"]["code"] == "bad_token"
    _, msg = server.call("reconstruct", {"backend": "hull"}, sketch_arrays(), token="")
    assert msg.header["error"]["code"] == "bad_token"
    assert server.alive()


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"S2M1" + b"\xff" * 12,
    b"S2M1\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00{oops",
    bytes(range(256)) * 40,
    b"S2M1\x02\x00\x00\x00",
])
def test_garbage_on_the_socket_never_crashes_the_server(server, garbage):
    with server.connect() as sock:
        try:
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may already have answered and hung up: that is allowed
        sock.settimeout(10)
        try:
            reply = protocol.recv_message(sock)
            assert reply.header["kind"] == "error"
        except (ConnectionError, OSError):
            pass
    assert server.alive()


def test_oversized_frame_is_refused_before_it_is_read(server):
    with server.connect() as sock:
        sock.sendall(protocol.PREFIX.pack(protocol.MAGIC, 100, 2**34))
        reply = protocol.recv_message(sock)
    assert reply.header["error"]["code"] == "too_large"
    assert server.alive()


def test_client_that_vanishes_mid_frame_is_harmless(server):
    frame = protocol.encode(protocol.make_request("reconstruct", server.token, "gone"), sketch_arrays())
    with server.connect() as sock:
        sock.sendall(frame[: len(frame) // 2])
    assert server.alive()


@pytest.mark.slow
def test_ping_and_cancel_are_answered_while_a_job_runs(server):
    job_id = "long-job"
    outcome = {}

    def run():
        outcome["progress"], outcome["msg"] = server.call(
            "reconstruct", {"backend": "hull", "detail": "high"}, sketch_arrays(), request_id=job_id)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, ping = server.call("ping")
        if job_id in ping.header["result"]["jobs"]:
            break
        time.sleep(0.01)
    else:
        pytest.fail("the job never showed up in ping")
    _, cancel = server.call("cancel", {"target": job_id})
    worker.join(60)
    assert not worker.is_alive()
    if cancel.header["result"]["cancelled"]:
        assert outcome["msg"].header["kind"] in ("error", "result")
        if outcome["msg"].header["kind"] == "error":
            assert outcome["msg"].header["error"]["code"] == "cancelled"
    assert server.alive()
    _, again = server.call("reconstruct", {"backend": "hull", "detail": "low"}, sketch_arrays())
    assert again.header["kind"] == "result"


def test_shutdown_stops_the_server_and_removes_its_token(tmp_path):
    s = Server(tmp_path)
    try:
        _, msg = s.call("shutdown")
        assert msg.header["result"]["stopping"]
        assert s.proc.wait(15) == 0
        assert not s.token_file.exists()
    finally:
        s.close()


def test_second_server_on_a_busy_port_says_so(server, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "model_server", "serve", "--port", str(server.port),
                           "--token-file", str(tmp_path / "t")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "cannot listen" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_non_loopback_host_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "model_server", "serve", "--host", "0.0.0.0", "--port", "0",
                           "--token-file", str(tmp_path / "t")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "loopback" in proc.stderr

"""The server against another local process that does not play by the rules (issue 11).

Each test opens real connections to a real server process, the way an attacker on the
same machine could.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import threading
import time

import numpy as np
import pytest
from server_harness import Server, ellipsoid_mesh, raw_frame, sketch_arrays

from sketch2mesh_addon import protocol

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads the server's memory from /proc")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("hardening"))
    s.rss_before = s.warm_up()
    yield s
    s.close()


def answers_a_ping(server: Server, tries: int = 100) -> bool:
    """Whether a real client's ping gets a result (a busy answer is retried, ``tries`` times at most)."""
    for _ in range(tries):
        try:
            _, msg = server.call("ping", timeout=30)
            if msg.header["kind"] == "result":
                return True
        except (ConnectionError, OSError):
            pass
        time.sleep(0.05)
    return False


def has_a_reply(sock: socket.socket) -> bool:
    """Whether the server has answered on ``sock`` (or hung up) yet, without waiting."""
    return bool(select.select([sock], [], [], 0)[0])


# --- Lock-out before the token ------------------------------------------------------------

def test_idle_and_trickling_connections_cannot_lock_out_a_real_client(server):
    idle = [server.connect() for _ in range(40)]
    stop = threading.Event()

    def trickle(sock: socket.socket) -> None:
        frame = raw_frame(protocol.make_request("ping", server.token, "slow"))
        for byte in frame:
            if stop.wait(1.0):
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return

    tricklers = [server.connect() for _ in range(5)]
    threads = [threading.Thread(target=trickle, args=(s,), daemon=True) for s in tricklers]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        assert answers_a_ping(server)
        # ... while the tricklers are still mid-frame: served beside them, not after their deadline.
        assert not any(has_a_reply(s) for s in tricklers), "the ping was answered only after the tricklers timed out"
        # A trickler gets one frame's deadline, not one read timeout per byte.
        time.sleep(5.0)
        tricklers[0].settimeout(2.0)
        try:
            reply = protocol.recv_message(tricklers[0])
            assert reply.header["error"]["code"] == "timeout"
        except (ConnectionError, OSError):
            pass
        assert tricklers[0].recv(1) == b""
    finally:
        stop.set()
        for s in idle + tricklers:
            s.close()


def test_a_full_job_queue_answers_busy_with_a_sentence(tmp_path):
    s = Server(tmp_path, "--max-queued-jobs", "1")
    try:
        outcome = {}

        def run(name: str) -> None:
            outcome[name] = s.call("reconstruct", {"backend": "hull", "detail": "high", "refine": 2000}, sketch_arrays(),
                                   request_id=name)

        first = threading.Thread(target=run, args=("first",))
        first.start()
        s.wait_for_job("first")
        second = threading.Thread(target=run, args=("second",))
        second.start()
        s.wait_for_job("second")
        _, msg = s.call("reconstruct", {"backend": "hull"}, sketch_arrays())
        assert msg.header["error"]["code"] == "busy"
        assert "busy" in msg.header["error"]["message"] and "queue" in msg.header["error"]["message"]
        for name in ("first", "second"):
            s.call("cancel", {"target": name})
        first.join(30)
        second.join(30)
        assert s.alive()
    finally:
        s.close()


# --- Memory before the token ----------------------------------------------------------------

def test_a_wrong_token_is_refused_before_the_payload_is_read(server):
    header = json.dumps(protocol.make_request("reconstruct", "wrong", "x") | {"arrays": []}).encode()
    with server.connect(10) as sock:
        sock.sendall(protocol.PREFIX.pack(protocol.MAGIC, len(header), 64 * 2**20) + header)
        sock.settimeout(5)
        reply = protocol.recv_message(sock)       # no payload sent: the answer comes anyway
    assert reply.header["error"]["code"] == "bad_token"


def peak_rss_while(server: Server, action) -> float:
    """The server's peak RSS growth (MB) while ``action()`` runs."""
    base, peak, done = server.rss_mb(), [0.0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], server.rss_mb())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        action()
    finally:
        done.set()
        watcher.join()
    return peak[0] - base


@pytest.mark.slow
def test_big_frames_are_read_once_into_one_buffer_and_bytes_in_flight_are_bounded(server):
    size = 200 * 2**20
    header = json.dumps(protocol.make_request("reconstruct", server.token, "big") | {"arrays": []}).encode()
    prefix = protocol.PREFIX.pack(protocol.MAGIC, len(header), size) + header
    chunk = bytes(2**20)

    def send_big(sock: socket.socket) -> None:
        try:
            sock.sendall(prefix)
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
        except OSError:
            pass  # refused early (busy): allowed

    def four_at_once() -> None:
        socks = [server.connect() for _ in range(4)]
        threads = [threading.Thread(target=send_big, args=(s,)) for s in socks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for s in socks:
            s.settimeout(30)
            try:
                reply = protocol.recv_message(s)
                assert reply.header["error"]["code"] in ("bad_header", "busy"), reply.header
            except (ConnectionError, OSError):
                pass
            s.close()

    grown = peak_rss_while(server, four_at_once)
    assert grown < size / 2**20 + 120, f"four 200 MiB frames grew the server by {grown:.0f} MB"
    grown = peak_rss_while(server, lambda: send_big(server.connect()))
    assert grown < size / 2**20 + 120, f"one 200 MiB frame grew the server by {grown:.0f} MB"
    assert server.alive()


# --- Decoder errors -------------------------------------------------------------------------

def frame_with_arrays(token: str, arrays: list[dict], payload: bytes) -> bytes:
    return raw_frame(protocol.make_request("reconstruct", token, "decoder") | {"arrays": arrays}, payload)


@pytest.mark.parametrize("make_frame", [
    lambda token: raw_frame(b"[" * 5000 + b"]" * 5000),
    lambda token: raw_frame(b'{"v":1,"id":"a","op":"ping","token":"' + b"\\ud800" + b'"}'),
    lambda token: frame_with_arrays(token, [{"name": "front.points", "dtype": "<f4",
                                              "shape": [0, 2**31 - 1, 2**31 - 1, 2**31 - 1]}], b""),
    lambda token: frame_with_arrays(token, [{"name": "front.points", "dtype": "<f4", "shape": []},
                                            {"name": "front.offsets", "dtype": "<i4", "shape": [1]}], b"\0" * 8),
], ids=["deep-json", "lone-surrogate-token", "huge-shape", "scalar-shape"])
def test_decoder_errors_get_a_structured_reply(server, make_frame):
    reply = server.send_raw(make_frame(server.token))
    assert reply is not None, "the server hung up without a reply"
    assert reply.header["kind"] == "error" and reply.header["error"]["message"]
    assert server.alive()


def test_a_thousand_bad_frames_barely_grow_the_log(tmp_path):
    s = Server(tmp_path)
    try:
        before = s.log_file.stat().st_size
        deep = raw_frame(b"[" * 5000 + b"]" * 5000)
        for _ in range(1000):
            s.send_raw(deep)
        assert s.alive()
        grown = s.log_file.stat().st_size - before
        assert grown < 20_000, f"1000 bad frames wrote {grown} bytes of log"
    finally:
        s.close()


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_the_version_must_be_the_integer_one(server, version):
    header = protocol.make_request("ping", server.token, "v") | {"v": version}
    reply = server.send_raw(raw_frame(header | {"arrays": []}))
    assert reply.header["error"]["code"] == "bad_version"


# --- Caps -----------------------------------------------------------------------------------

def test_millions_of_empty_strokes_are_refused_without_growing_the_server(server):
    base = server.rss_mb()
    arrays = sketch_arrays()
    arrays["front.offsets"] = np.zeros(4_000_001, np.int32)
    arrays["front.points"] = np.zeros((0, 2), np.float32)
    arrays["front.pressure"] = np.zeros(0, np.float32)
    _, msg = server.call("reconstruct", {"backend": "hull"}, arrays)
    assert msg.header["error"]["code"] == "bad_input"
    assert "strokes" in msg.header["error"]["message"] and "allowed" in msg.header["error"]["message"]
    assert server.rss_mb() - base < 100


def test_a_fit_of_a_million_faces_is_refused_at_once(server):
    faces = np.random.default_rng(0).integers(0, 1000, (1_000_000, 3)).astype(np.int32)
    vertices = np.random.default_rng(1).normal(size=(1000, 3)).astype(np.float32)
    progress, msg = server.call("fit", {"iterations": 200}, sketch_arrays() | protocol.pack_mesh(vertices, faces))
    assert msg.header["error"]["code"] == "bad_input" and "faces" in msg.header["error"]["message"]
    assert progress == [], "the fit started before the cap refused it"


def test_caps_are_configurable(tmp_path):
    s = Server(tmp_path, "--max-strokes", "3", "--max-fit-faces", "100")
    try:
        _, msg = s.call("reconstruct", {"backend": "hull"}, sketch_arrays(front=[np.zeros((2, 2))] * 4))
        assert msg.header["error"]["code"] == "bad_input" and "3" in msg.header["error"]["message"]
        vertices, faces = ellipsoid_mesh(subdivisions=1)       # 80 faces: under the cap
        _, msg = s.call("fit", {"iterations": 2}, sketch_arrays() | protocol.pack_mesh(vertices, faces))
        assert msg.header["kind"] == "result", msg.header
        vertices, faces = ellipsoid_mesh(subdivisions=2)       # 320 faces: over it
        _, msg = s.call("fit", {"iterations": 2}, sketch_arrays() | protocol.pack_mesh(vertices, faces))
        assert msg.header["error"]["code"] == "bad_input" and "100" in msg.header["error"]["message"]
    finally:
        s.close()


# --- Liveness and cancel --------------------------------------------------------------------

@pytest.mark.slow
def test_the_server_speaks_at_least_every_two_seconds_while_it_works(server):
    gaps, last = [], [time.monotonic()]
    with server.connect() as sock:
        protocol.send_message(sock, protocol.make_request("reconstruct", server.token, "beat",
                                                          {"detail": "high", "refine": 300}), sketch_arrays())
        while True:
            msg = protocol.recv_message(sock)
            now = time.monotonic()
            gaps.append(now - last[0])
            last[0] = now
            if msg.header["kind"] != "progress":
                break
    assert msg.header["kind"] == "result", msg.header
    assert max(gaps) <= 2.0, f"longest silence {max(gaps):.2f} s"


def cancel_latency(server: Server, op: str, params: dict, arrays: dict, when: str) -> tuple[float, dict]:
    """Start a job, cancel it once its progress says ``when``; return the seconds from the
    cancel request to the job's last reply, and that reply's header."""
    with server.connect() as sock:
        protocol.send_message(sock, protocol.make_request(op, server.token, f"cancel-{when}", params), arrays)
        while True:
            msg = protocol.recv_message(sock)
            assert msg.header["kind"] == "progress", msg.header
            if when in msg.header["message"]:
                break
        started = time.monotonic()
        assert server.call("cancel", {"target": f"cancel-{when}"})[1].header["result"]["cancelled"]
        while True:
            msg = protocol.recv_message(sock)
            if msg.header["kind"] != "progress":
                return time.monotonic() - started, msg.header


@pytest.mark.slow
@pytest.mark.parametrize("op, when", [("reconstruct", "Predicting"), ("reconstruct", "Fusing"), ("fit", "Fitting")])
def test_cancel_stops_the_job_within_seconds_and_the_next_job_runs(server, op, when):
    """The job's last reply is the cancel's, not its full result; then the next job runs. The
    file's one timed bound: the issue asks for a second, a loaded test machine needs more."""
    params = {"detail": "high"} if op == "reconstruct" else {"iterations": 5000}
    arrays = sketch_arrays() | (protocol.pack_mesh(*ellipsoid_mesh(subdivisions=5)) if op == "fit" else {})
    seconds, last = cancel_latency(server, op, params, arrays, when)
    if last["kind"] == "result":    # a fit answers with its best shape so far, if it can in time
        assert op == "fit" and last["result"]["fit"]["cancelled"], last
    else:
        assert last["error"]["code"] == "cancelled", last
    assert seconds <= 3.0, f"{op} took {seconds:.2f} s to stop after cancel ({when})"
    _, msg = server.call("reconstruct", {"backend": "hull"}, sketch_arrays(), request_id="next")
    assert msg.header["kind"] == "result", msg.header


@pytest.mark.slow
def test_a_stopped_server_is_noticed_within_ten_seconds(tmp_path):
    from sketch2mesh_addon import client

    s = Server(tmp_path)
    outcome = {}

    def run() -> None:
        try:
            client.reconstruct("127.0.0.1", s.port, s.token, {"front": [sketch_arrays()["front.points"]],
                                                              "side": [sketch_arrays()["side.points"]]},
                               detail="high", refine=2000)
        except client.ServerError as exc:
            outcome["error"] = exc

    try:
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        time.sleep(2.0)
        started = time.monotonic()
        os.kill(s.proc.pid, signal.SIGSTOP)
        worker.join(20)
        assert not worker.is_alive(), "the client was still waiting 20 s after the server stopped"
        assert outcome["error"].code == "timeout" and "stop and start" in outcome["error"].message
        assert time.monotonic() - started < 15
    finally:
        os.kill(s.proc.pid, signal.SIGCONT)
        s.close()


def test_a_simulated_cuda_out_of_memory_is_a_clear_error_and_the_server_keeps_serving(tmp_path):
    s = Server(tmp_path, env={"SKETCH2MESH_FAULT": "cuda_oom"})
    try:
        _, msg = s.call("reconstruct", {"backend": "hull", "detail": "low"}, sketch_arrays())
        assert msg.header["error"]["code"] == "out_of_memory"
        assert "memory" in msg.header["error"]["message"] and "--device cpu" in msg.header["error"]["message"]
        _, msg = s.call("reconstruct", {"backend": "hull", "detail": "low"}, sketch_arrays())
        assert msg.header["kind"] == "result", msg.header
    finally:
        s.close()


def test_after_the_abuse_above_the_server_is_alive_and_has_not_grown(server):
    after = server.rss_mb()
    print(f"\nserver RSS before the abuse tests {server.rss_before:.0f} MB, after {after:.0f} MB")
    assert server.alive()
    assert after - server.rss_before < 100, f"the server grew from {server.rss_before:.0f} to {after:.0f} MB"
    _, msg = server.call("reconstruct", {"backend": "hull", "detail": "low"}, sketch_arrays())
    assert msg.header["kind"] == "result", msg.header


# --- Unit checks of the frame reader ---------------------------------------------------------

def test_shapes_whose_elements_overflow_are_refused_by_decode():
    head = json.dumps({"arrays": [{"name": "a", "dtype": "<f4", "shape": [0, 2**31 - 1, 2**31 - 1, 2**31 - 1]}]}).encode()
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(head, b"")
    head = json.dumps({"arrays": [{"name": "a", "dtype": "<f4", "shape": []}]}).encode()
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(head, b"\0" * 4)


# --- The token file ----------------------------------------------------------------------------

def test_a_planted_tmp_file_or_symlink_cannot_capture_the_token(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = folder / "server-1.token"
    os.symlink(victim, path.with_suffix(".tmp"))
    token = protocol.write_token(path)
    assert victim.read_text() == "keep me"
    assert not path.is_symlink() and path.stat().st_mode & 0o777 == 0o600 and path.read_text() == token
    path.unlink()
    os.symlink(victim, path)
    with pytest.raises(protocol.TokenFileError, match="symbolic link"):
        protocol.write_token(path)
    assert victim.read_text() == "keep me"


def test_a_token_folder_others_can_write_to_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(protocol.TokenFileError, match="others can write"):
        protocol.write_token(shared / "server.token")
    assert not (shared / "server.token").exists()


def test_our_own_folder_left_group_writable_by_the_umask_is_made_private(tmp_path):
    ours = tmp_path / "extension"
    ours.mkdir()
    ours.chmod(0o775)
    protocol.write_token(ours / "server.token", tighten=True)
    assert ours.stat().st_mode & 0o777 == 0o700
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    with pytest.raises(protocol.TokenFileError, match="others can write"):
        protocol.write_token(sticky / "server.token", tighten=True)
    assert sticky.stat().st_mode & 0o7777 == 0o1777


def test_a_big_header_with_a_wrong_token_is_refused_unread(server):
    header = b'{"token": "wrong", "pad": "' + b"x" * (1 << 20) + b'"}'
    reply = server.send_raw(protocol.PREFIX.pack(protocol.MAGIC, len(header), 0) + header)
    assert reply.header["error"]["code"] == "too_large"
    assert server.alive()


def test_the_runtime_folder_is_created_private(tmp_path, monkeypatch):
    monkeypatch.setenv("SKETCH2MESH_RUNTIME_DIR", str(tmp_path / "new" / "sketch2mesh"))
    protocol.write_token(protocol.token_path(1234))
    assert (tmp_path / "new" / "sketch2mesh").stat().st_mode & 0o777 == 0o700


def test_a_server_refuses_a_token_file_in_a_shared_folder(tmp_path):
    import subprocess

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    proc = subprocess.run([sys.executable, "-m", "model_server", "serve", "--port", "0",
                           "--token-file", str(shared / "t")], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "others can write" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

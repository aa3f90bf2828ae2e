"""Faults the add-on must survive, with real processes: a server killed mid-job, the token
file a killed server leaves behind, Blender going away (or the add-on being disabled)
while a job runs, undo and redo around Reconstruct and Fit to strokes, and a full server
told apart from a crashed one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import addon_utils
import bpy
import numpy as np
import pytest

from sketch2mesh_addon import (client, job_flow, job_operator, jobs, mesh_import, preferences, protocol, server_process,
                               strokes)

pytestmark = pytest.mark.bpy

ADDON = "sketch2mesh_addon"
REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
WAIT_S = 120.0
KILL_TO_ERROR_S = 2.0       # a killed server is an error on the user's screen this soon
ORPHAN_GONE_S = 10.0        # a server whose Blender went away is gone this soon
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc")


def _prefs():
    return bpy.context.preferences.addons[ADDON].preferences


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> float:
    """Poll ``condition`` until it holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - started


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie waiting to be reaped counts as gone). Linux."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat_line.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def server_cmdline(pid: int) -> list[str]:
    """The command line of process ``pid`` (empty when it is gone, or off Linux)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def kill_server_pid(pid: int | None) -> None:
    """Kill a model server that a test failed to see stopped (never anything else)."""
    if pid and not process_gone(pid) and "model_server" in server_cmdline(pid):
        os.kill(pid, signal.SIGKILL)


def sketch_strokes(name: str = "Sketch") -> dict[str, list[bytes]]:
    """Every stroke of a sketch, as bytes: what must never change."""
    return {view: [s.tobytes() for s in ss] for view, ss in strokes.read_sketch(bpy.data.objects[name]).items()}


def at_the_server(work: jobs.Work, running: threading.Event) -> jobs.Work:
    """``work`` that sets ``running`` once the server reports the job's progress (it runs there)."""
    def run(progress, cancel):
        def relay(message: str, fraction: float) -> None:
            progress(message, fraction)
            if message != "Connecting to the server" and not message.startswith("Queued"):
                running.set()
        return work(relay, cancel)
    return run


@pytest.fixture
def managed_scene(scene):
    """Preferences that let the add-on start (and restart) its own server on a free port; at
    the end no job runs and no server of the add-on's is left."""
    _prefs().auto_start = True
    yield scene
    job = jobs.current()
    if job is not None:
        job.cancel.set()
        job.done.wait(WAIT_S)
    server = server_process.managed()
    pid = server.process.pid if server is not None and server.process is not None else None
    server_process.stop()
    kill_server_pid(pid)


def _managed_process() -> subprocess.Popen:
    server = server_process.managed()
    assert server is not None and server.alive()
    return server.process


# --- 1. SIGKILL mid-reconstruct ------------------------------------------------------------


@posix_only
@pytest.mark.slow
def test_a_server_killed_mid_reconstruct_is_one_sentence_at_once_and_the_next_click_restarts_it(
        managed_scene, draw_sketch, scene_state):
    draw_sketch()
    before, drawn = scene_state(), sketch_strokes()
    settings = preferences.settings()
    running = threading.Event()
    sketch = strokes.read_sketch(bpy.data.objects["Sketch"])
    job = jobs.submit("Reconstruct", at_the_server(jobs.reconstruct_work(settings, sketch, "hull", "high", 0), running))
    flow = job_flow.JobFlow(job, time.monotonic)          # what the operator's modal timer polls
    assert running.wait(WAIT_S), f"the job never ran on the server: {job.message}, {job.error}"
    process = _managed_process()
    token = server_process.managed().token()
    status = client.ping(HOST, settings.port, token)
    assert status["pid"] == process.pid and status["jobs"], status     # the job runs there now
    assert flow.handle(job_flow.Event.TICK).returns == job_flow.RUNNING

    os.kill(process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    step = flow.handle(job_flow.Event.TICK)
    while step.returns == job_flow.RUNNING and time.monotonic() - killed_at < WAIT_S:
        time.sleep(job_operator.TIMER_S)
        step = flow.handle(job_flow.Event.TICK)
    ended_after = time.monotonic() - killed_at
    process.wait(WAIT_S)

    assert ended_after < KILL_TO_ERROR_S, f"the job ended {ended_after:.1f} s after the kill"
    assert isinstance(job.error, client.ServerError) and job.error.code == "disconnected", repr(job.error)
    message = jobs.user_message(job.error)
    assert message == (f"The Sketch2Mesh server at {HOST}:{settings.port} closed the connection before answering; "
                       "it may have crashed, see its log.")
    assert len(message.splitlines()) == 1 and message.endswith(".") and ". " not in message
    assert step == job_flow.Step(returns=job_flow.CANCELLED, ended=True, restore=True,
                                 report=job_flow.Report("ERROR", message))
    assert scene_state() == before and sketch_strokes() == drawn
    assert not any(o.type == "MESH" for o in bpy.data.objects)

    assert bpy.ops.sketch2mesh.reconstruct(backend="HULL", detail="LOW") == {"FINISHED"}
    restarted = _managed_process()
    assert restarted.pid != process.pid
    obj = bpy.context.view_layer.objects.active
    assert obj.type == "MESH" and obj.name == "Sketch_mesh" and len(obj.data.polygons) > 0
    assert obj.data.validate(verbose=False) is False
    assert sketch_strokes() == drawn


# --- 2. The token file a killed server leaves ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("add_on_remembers_it", [True, False], ids=["same-session", "new-session"])
def test_a_killed_servers_stale_token_does_not_stop_the_next_start(managed_scene, draw_sketch, add_on_remembers_it):
    draw_sketch()
    assert bpy.ops.sketch2mesh.server_start() == {"FINISHED"}
    server = server_process.managed()
    process, token_file, stale = server.process, server.token_file, server.token()
    assert stale and token_file.is_file()
    process.kill()
    process.wait(WAIT_S)
    assert protocol.read_token(token_file) == stale       # nothing cleaned it up: it is stale now
    if add_on_remembers_it:
        # The next click, in the same Blender: the default backend, as a user's click is.
        assert bpy.ops.sketch2mesh.reconstruct(detail="LOW") == {"FINISHED"}
        assert bpy.context.view_layer.objects.active.name == "Sketch_mesh"
    else:
        # A new Blender session: the add-on knows of no server, only the file is left.
        assert server_process.stop() is False and server_process.managed() is None
        connection = server_process.ensure_server(preferences.settings())
        assert connection.token != stale
    fresh = _managed_process()
    assert fresh.pid != process.pid
    token = protocol.read_token(token_file)
    assert token and token != stale
    assert client.ping(HOST, _prefs().port, token)["pid"] == fresh.pid
    with pytest.raises(client.ServerError) as error:
        client.ping(HOST, _prefs().port, stale)
    assert error.value.code == "bad_token"


# --- 3. No orphan server --------------------------------------------------------------------

CHILD = r'''
"""A Blender session (the bpy wheel) that starts a long reconstruct, then ends as told."""
import json, sys, threading, time

import bpy
import addon_utils
import numpy as np

sys.path.insert(0, sys.argv[1])
server_python, port, sketch_file, how = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
assert addon_utils.enable("sketch2mesh_addon", default_set=True) is not None
from sketch2mesh_addon import client, jobs, preferences, server_process, strokes

bpy.ops.wm.read_homefile(use_empty=True)
p = bpy.context.preferences.addons["sketch2mesh_addon"].preferences
p.server_python, p.host, p.port, p.auto_start, p.device = server_python, "127.0.0.1", port, True, "CPU"
bpy.ops.sketch2mesh.new_sketch()
data = np.load(sketch_file)
strokes.write_sketch(bpy.context.view_layer.objects.active, {"front": [data["front"]], "side": [data["side"]]})
sketch = strokes.read_sketch(bpy.context.view_layer.objects.active)
running = threading.Event()
work = jobs.reconstruct_work(preferences.settings(), sketch, "hull", "high", 2000)

def watched(progress, cancel):
    def relay(message, fraction):
        if message != "Connecting to the server" and not message.startswith("Queued"):
            running.set()
    return work(relay, cancel)

job = jobs.submit("Reconstruct", watched)
if not running.wait(120):
    print(json.dumps({"error": repr(job.error)}), flush=True)
    sys.exit(3)
managed = server_process.managed()
status = client.ping("127.0.0.1", port, managed.token())
print(json.dumps({"pid": status["pid"], "jobs": status["jobs"], "managed_pid": managed.process.pid}), flush=True)
if how == "wait":
    time.sleep(600)
sys.exit(0)
'''


@pytest.fixture
def blender_child(tmp_path, box, server_python, unused_port):
    """Run a child Blender that starts a reconstruct on its own server; returns (child, server
    status). Kills the child and any server it left, whatever the test's outcome."""
    started: list[tuple[subprocess.Popen, dict]] = []
    script, sketch_file = tmp_path / "child.py", tmp_path / "sketch.npz"
    script.write_text(CHILD)
    np.savez(sketch_file, front=box["front"][0], side=box["side"][0])

    def run(how: str) -> tuple[subprocess.Popen, dict]:
        child = subprocess.Popen([sys.executable, str(script), str(REPO), server_python, str(unused_port),
                                  str(sketch_file), how], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, text=True)
        started.append((child, {}))
        lines: list[str] = []
        reported = threading.Event()

        def read() -> None:   # to the end, so the child never blocks on a full pipe
            for line in child.stdout:
                lines.append(line)
                if line.startswith("{"):
                    reported.set()

        threading.Thread(target=read, daemon=True).start()
        reported.wait(WAIT_S)
        status = next((json.loads(line) for line in lines if line.startswith("{")), {})
        started[-1] = (child, status)
        assert "pid" in status, "the child Blender never got its job running:\n" + "".join(lines)
        return child, status

    yield run
    for child, status in started:
        if child.poll() is None:
            child.kill()
        child.wait(WAIT_S)
        kill_server_pid(status.get("pid"))


def _check_its_server(child: subprocess.Popen, status: dict) -> int:
    """The child's server: the one it manages, started by it, running its job."""
    pid = status["pid"]
    assert status["managed_pid"] == pid and len(status["jobs"]) == 1, status
    assert "model_server" in server_cmdline(pid)
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent == child.pid and not process_gone(pid)
    return pid


@linux_only
@pytest.mark.slow
def test_blender_exiting_normally_mid_job_leaves_no_server(blender_child):
    child, status = blender_child("exit")
    pid = _check_its_server(child, status)
    assert child.wait(WAIT_S) == 0, "the child Blender failed to exit cleanly"
    stopped_by_the_add_on = process_gone(pid)     # at exit it stops its server and waits for it
    wait_for(lambda: process_gone(pid), "the server to stop", ORPHAN_GONE_S)
    assert stopped_by_the_add_on, "the add-on left its server running at exit (the server's watchdog stopped it)"


@linux_only
@pytest.mark.slow
def test_blender_killed_mid_job_leaves_no_server(blender_child):
    child, status = blender_child("wait")
    pid = _check_its_server(child, status)
    child.kill()
    child.wait(WAIT_S)
    took = wait_for(lambda: process_gone(pid), "the server to notice its Blender is gone", ORPHAN_GONE_S)
    assert took < 5.0, f"the server outlived its Blender by {took:.1f} s"


@pytest.mark.slow
def test_disabling_the_add_on_mid_job_stops_its_server(managed_scene, draw_sketch):
    draw_sketch()
    running = threading.Event()
    sketch = strokes.read_sketch(bpy.data.objects["Sketch"])
    job = jobs.submit("Reconstruct", at_the_server(
        jobs.reconstruct_work(preferences.settings(), sketch, "hull", "high", 2000), running))
    assert running.wait(WAIT_S), f"the job never ran on the server: {job.message}, {job.error}"
    process, port = _managed_process(), _prefs().port
    assert client.ping(HOST, port, server_process.managed().token())["jobs"]
    addon_utils.disable(ADDON, default_set=True)
    try:
        assert process.poll() is not None, "the add-on's server outlived the add-on"
        assert server_process.managed() is None
        assert job.done.wait(client.CANCEL_GRACE_S + 5.0), "the job outlived the add-on"
        assert job.result is None and job.cancelled, repr(job.error)
        with pytest.raises(client.ServerUnreachable):
            client.ping(HOST, port, "")
    finally:
        if process.poll() is None:
            process.kill()
        assert addon_utils.enable(ADDON, default_set=True) is not None


# --- 4. Undo and redo around Reconstruct and Fit to strokes -----------------------------------




def _as_from_the_ui(operator, **options) -> set[str]:
    """Call an operator with Blender's undo push on, as a button does ("EXEC_DEFAULT", undo=True)."""
    return operator("EXEC_DEFAULT", True, **options)


def _co(data) -> np.ndarray:
    co = np.empty(len(data) * 3, np.float32)
    data.foreach_get("co", co)
    return co.reshape(-1, 3)


def _checked_mesh(counts: tuple[int, int], keys: list[str]) -> bpy.types.Object:
    """The reconstructed mesh, looked up afresh (undo replaces every datablock), after checking
    that it is valid, has ``counts`` (vertices, faces) and the shape keys ``keys``."""
    obj = bpy.data.objects["Sketch_mesh"]
    mesh = obj.data
    assert (len(mesh.vertices), len(mesh.polygons)) == counts
    assert mesh.validate(verbose=False) is False, "the mesh needed fixing"
    assert (len(mesh.vertices), len(mesh.polygons)) == counts
    assert ([k.name for k in mesh.shape_keys.key_blocks] if mesh.shape_keys else []) == keys
    return obj


@pytest.mark.slow
def test_undo_and_redo_around_reconstruct_and_fit_keep_valid_data(served_scene, draw_sketch, undo_window):
    draw_sketch()
    drawn = sketch_strokes()
    for operator in (bpy.types.SKETCH2MESH_OT_reconstruct, bpy.types.SKETCH2MESH_OT_fit_strokes):
        assert "UNDO" in operator.bl_options
    with undo_window():
        bpy.ops.ed.undo_push(message="before")   # background mode starts with undo off

    assert _as_from_the_ui(bpy.ops.sketch2mesh.reconstruct, backend="HULL", detail="LOW") == {"FINISHED"}
    obj = bpy.data.objects["Sketch_mesh"]
    counts = (len(obj.data.vertices), len(obj.data.polygons))
    assert counts[0] > 100 and counts[1] == 2 * counts[0] - 4      # a closed triangle mesh (genus 0)
    basis = _co(_checked_mesh(counts, []).data.vertices)
    assert sketch_strokes() == drawn

    with undo_window():
        bpy.ops.ed.undo()
    assert "Sketch_mesh" not in bpy.data.objects and not bpy.data.meshes.get("Sketch_mesh")
    assert sketch_strokes() == drawn

    with undo_window():
        bpy.ops.ed.redo()
    np.testing.assert_array_equal(_co(_checked_mesh(counts, []).data.vertices), basis)
    assert sketch_strokes() == drawn

    bpy.context.view_layer.objects.active = obj = bpy.data.objects["Sketch_mesh"]
    for vertex in obj.data.vertices:             # off the drawing, so the fit has something to fix
        vertex.co.x *= 0.85                      # (a mesh that already matches is left as it is)
    obj.data.update()
    with undo_window():
        bpy.ops.ed.undo_push(message="squeezed")
    basis = _co(obj.data.vertices)
    assert _as_from_the_ui(bpy.ops.sketch2mesh.fit_strokes, iterations=5) == {"FINISHED"}
    obj = _checked_mesh(counts, ["Basis", mesh_import.FITTED_KEY])
    keys = obj.data.shape_keys.key_blocks
    np.testing.assert_array_equal(_co(keys["Basis"].data), basis)
    fitted = _co(keys[mesh_import.FITTED_KEY].data)
    assert keys[mesh_import.FITTED_KEY].value == 1.0 and not np.array_equal(fitted, basis)
    assert sketch_strokes() == drawn

    with undo_window():
        bpy.ops.ed.undo()
    np.testing.assert_array_equal(_co(_checked_mesh(counts, []).data.vertices), basis)
    assert sketch_strokes() == drawn

    with undo_window():
        bpy.ops.ed.redo()
    keys = _checked_mesh(counts, ["Basis", mesh_import.FITTED_KEY]).data.shape_keys.key_blocks
    np.testing.assert_array_equal(_co(keys[mesh_import.FITTED_KEY].data), fitted)
    assert sketch_strokes() == drawn


# --- 5. A full server is busy, a killed one may have crashed ----------------------------------


@pytest.fixture
def limited_server(tmp_path, server_python):
    """A server started by hand with room for one queued job: (port, token, process)."""
    token_file, log = tmp_path / "tokens" / "server.token", tmp_path / "server.log"
    with open(log, "wb") as errors:
        process = subprocess.Popen([server_python, "-m", "model_server", "serve", "--port", "0", "--device", "cpu",
                                    "--token-file", str(token_file), "--max-queued-jobs", "1"],
                                   stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, text=True)
    try:
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(WAIT_S)
        assert ready and " ready on " in ready[0], f"the server did not start: {ready}\n{log.read_text()}"
        port = int(ready[0].split(" ready on ", 1)[1].split()[0].rsplit(":", 1)[1])
        yield port, protocol.read_token(token_file), process
    finally:
        process.kill()
        process.wait(WAIT_S)


class Running:
    """A reconstruct in a thread against a real server: its outcome, and a way to cancel it."""

    def __init__(self, port: int, token: str, sketch: dict, **options):
        self.cancel, self.heard, self.error = threading.Event(), threading.Event(), None
        self.result: client.ReconstructResult | None = None

        def run() -> None:
            try:
                self.result = client.reconstruct(HOST, port, token, sketch, cancel=self.cancel,
                                                 on_progress=lambda m, f: self.heard.set(), **options)
            except client.ServerError as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def end(self) -> None:
        self.cancel.set()
        self.thread.join(WAIT_S)


@pytest.mark.slow
def test_a_full_server_says_busy_not_crashed(limited_server, box):
    port, token, _ = limited_server
    long_job = dict(backend="hull", detail="high", refine=2000)
    occupying = [Running(port, token, box, **long_job)]
    try:
        assert occupying[0].heard.wait(WAIT_S)
        occupying.append(Running(port, token, box, **long_job))
        wait_for(lambda: len(client.ping(HOST, port, token)["jobs"]) == 2, "one job running and one queued")
        with pytest.raises(client.ServerError) as error:
            client.reconstruct(HOST, port, token, box, backend="hull", detail="low")
        assert len(client.ping(HOST, port, token)["jobs"]) == 2, "the long jobs ended too soon for this test"
    finally:
        for job in occupying:
            job.end()
    assert error.value.code == "busy"
    assert "busy" in error.value.message and "crash" not in error.value.message
    assert len(error.value.message.splitlines()) == 1
    assert jobs.user_message(error.value) == error.value.message
    for job in occupying:
        assert not job.thread.is_alive() and isinstance(job.error, client.Cancelled), repr(job.error)
    wait_for(lambda: client.ping(HOST, port, token)["jobs"] == [], "the cancelled jobs to leave")   # it serves again
    done = client.reconstruct(HOST, port, token, box, backend="hull", detail="low")
    assert len(done.faces) > 0


@pytest.mark.slow
def test_a_server_killed_mid_job_may_have_crashed_not_busy(limited_server, box):
    port, token, process = limited_server
    job = Running(port, token, box, backend="hull", detail="high")
    try:
        assert job.heard.wait(WAIT_S)
        assert client.ping(HOST, port, token)["jobs"]
        process.kill()
        killed_at = time.monotonic()
        job.thread.join(WAIT_S)
        assert time.monotonic() - killed_at < KILL_TO_ERROR_S
    finally:
        job.end()
    assert job.result is None and job.error is not None
    assert job.error.code == "disconnected" and not isinstance(job.error, client.Cancelled), repr(job.error)
    assert "may have crashed" in job.error.message and "busy" not in job.error.message
    assert len(job.error.message.splitlines()) == 1

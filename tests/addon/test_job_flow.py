"""The interactive path: job_flow.JobFlow driven by a fake clock and a fake event pump.

The bpy wheel runs in background mode, where Blender's modal loop and timers never run,
so these tests play Blender's part: they send the flow ticks and Esc presses the way a
modal timer would, with real worker threads (jobs.Job) doing the work. The fit tests also
apply each step through the Fit to strokes operator's own methods onto a real mesh.
"""

from __future__ import annotations

import socket
import stat
import sys
import threading
import time
from types import SimpleNamespace
from typing import Callable

import bpy
import numpy as np
import pytest

from sketch2mesh_addon import client, job_flow, job_operator, jobs, mesh_import, operators, protocol, server_process
from sketch2mesh_addon.job_flow import CANCELLED, FINISHED, PASS_THROUGH, RUNNING, Event, Report, Step

WAIT_S = 60
TIMER = SimpleNamespace(type="TIMER", value="NOTHING")
ESC = SimpleNamespace(type="ESC", value="PRESS")
MOUSE = SimpleNamespace(type="MOUSEMOVE", value="NOTHING")


class FakeClock:
    """Seconds that only move when the test says so."""

    def __init__(self):
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Pump:
    """Blender's modal loop played by hand: each tick moves the clock by the timer's period."""

    def __init__(self, job: jobs.Job, live: jobs.Latest | None = None):
        self.clock = FakeClock()
        self.flow = job_flow.JobFlow(job, self.clock, live)

    def send(self, event: Event = Event.TICK) -> Step:
        if event is Event.TICK:
            self.clock.now += job_operator.TIMER_S
        return self.flow.handle(event)

    def until_end(self) -> Step:
        """Tick until the flow ends the job; the last step."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            step = self.send()
            if step.returns != RUNNING:
                return step
            time.sleep(0.005)
        pytest.fail("the job never ended")


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds (a worker thread reaching a stage)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


_gates: list[threading.Event] = []


def gate() -> threading.Event:
    """An event a worker waits on, so the test decides when it moves on; all open at teardown."""
    _gates.append(threading.Event())
    return _gates[-1]


@pytest.fixture(autouse=True)
def no_job_left_running():
    """Every test leaves no job behind (only one may run at a time)."""
    yield
    for held in _gates:
        held.set()
    _gates.clear()
    job = jobs.current()
    if job is not None:
        job.cancel.set()
        assert job.done.wait(WAIT_S)


def held_job(title: str, message: str, fraction: float, end) -> tuple[jobs.Job, threading.Event]:
    """A job that reports progress, then holds until released, then returns ``end(cancelled)``
    (or raises what it raises): a worker that has not yet noticed a cancel, as the client in
    its grace period. Returns the job, already holding, and its release."""
    reached, release = threading.Event(), gate()

    def work(progress, cancel):
        progress(message, fraction)
        reached.set()
        release.wait(WAIT_S)
        return end(cancel.is_set())

    job = jobs.submit(title, work)
    assert reached.wait(WAIT_S)
    return job, release


def raise_cancelled_if(cancelled: bool):
    """What the client does once the user cancelled: raise Cancelled; else a result."""
    if cancelled:
        raise client.Cancelled("cancelled", "Cancelled.")
    return "mesh"


# --- a job that succeeds, one that fails ------------------------------------------------


def test_a_job_that_succeeds_shows_progress_then_finishes_with_one_undo_step():
    job, release = held_job("Reconstruct", "Fusing", 0.4, raise_cancelled_if)
    pump = Pump(job)
    assert pump.send() == Step(status="Reconstruct: Fusing (40%), 0 s  (Esc to cancel)", fraction=0.4)
    pump.clock.now += 12.0
    assert pump.send().status == "Reconstruct: Fusing (40%), 12 s  (Esc to cancel)"
    assert pump.send(Event.OTHER) == Step(returns=PASS_THROUGH)   # the user keeps working meanwhile
    release.set()
    end = pump.until_end()
    assert end == Step(returns=FINISHED, ended=True, result="mesh")
    assert end.pushes_undo
    # Once ended, nothing more happens: events pass through, a late abort restores nothing.
    assert pump.send() == Step(returns=PASS_THROUGH)
    assert pump.flow.abort() == Step(returns=CANCELLED)


FAILURES = {
    "server error": (client.ServerError("bad_input", "The sketch is empty: draw the object's outline on the Front "
                                                     "layer, the Side layer or both."),
                     "The sketch is empty: draw the object's outline on the Front layer, the Side layer or both."),
    "bug": (ValueError("boom"), "Sketch2Mesh failed: boom"),
    "no result": (None, "Sketch2Mesh failed: the job ended without a result"),
}


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_a_job_that_fails_restores_and_reports_one_sentence(kind):
    error, sentence = FAILURES[kind]

    def end(cancelled):
        if error is not None:
            raise error

    job, release = held_job("Reconstruct", "Fusing", 0.4, end)
    pump = Pump(job)
    assert pump.send().returns == RUNNING
    release.set()
    end_step = pump.until_end()
    assert end_step == Step(returns=CANCELLED, ended=True, restore=True, report=Report("ERROR", sentence))
    assert not end_step.pushes_undo


# --- Esc (or the panel's Cancel button) at each stage -----------------------------------


@pytest.fixture
def sleeping_python(tmp_path):
    """A 'Server Python' that starts and never answers, as a server still loading torch."""
    if sys.platform == "win32":
        pytest.skip("a shell script stands in for the server's Python")
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\nexec sleep 300\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    yield script
    server = server_process.managed()
    if server is not None and server.process is not None:
        server.process.kill()
    server_process.stop()


def test_esc_while_the_server_starts_cancels_and_restores(sleeping_python, tmp_path, box, unused_port):
    settings = server_process.Settings(server_python=str(sleeping_python), port=unused_port, auto_start=True,
                                       device="cpu", state_dir=tmp_path)
    job = jobs.submit("Reconstruct", jobs.reconstruct_work(settings, box, "hull", "low", 0))
    pump = Pump(job)
    wait_for(lambda: server_process.managed() is not None and server_process.managed().alive(), "the server start")
    assert pump.send().status == "Reconstruct: Connecting to the server (0%), 0 s  (Esc to cancel)"
    assert pump.send(Event.ESC) == Step(status="Reconstruct: cancelling, 0 s", fraction=0.0)
    assert job.cancel.is_set()
    end = pump.until_end()
    assert end == Step(returns=CANCELLED, ended=True, restore=True, report=Report("INFO", "Reconstruct cancelled."))


def test_esc_while_the_server_works_shows_cancelling_then_restores():
    job, release = held_job("Reconstruct", "Fusing", 0.4, raise_cancelled_if)
    pump = Pump(job)
    pump.send()
    assert pump.send(Event.ESC) == Step(status="Reconstruct: cancelling, 0 s", fraction=0.4)
    assert job.cancel.is_set()
    assert pump.send() == Step(status="Reconstruct: cancelling, 0 s", fraction=0.4)
    release.set()
    end = pump.until_end()
    assert end == Step(returns=CANCELLED, ended=True, restore=True, report=Report("INFO", "Reconstruct cancelled."))
    assert not end.pushes_undo


def test_the_panels_cancel_button_cancels_like_esc():
    job, release = held_job("Reconstruct", "Fusing", 0.4, raise_cancelled_if)
    pump = Pump(job)
    assert pump.send().returns == RUNNING
    assert jobs.cancel_current()   # what SKETCH2MESH_OT_cancel does
    assert job_flow.progress_text(job) == "Reconstruct: cancelling"   # the panel's progress bar
    assert pump.send() == Step(status="Reconstruct: cancelling, 0 s", fraction=0.4)
    release.set()
    end = pump.until_end()
    assert end == Step(returns=CANCELLED, ended=True, restore=True, report=Report("INFO", "Reconstruct cancelled."))


def test_esc_after_the_result_arrived_still_applies_it():
    job, release = held_job("Reconstruct", "Fusing", 0.4, raise_cancelled_if)
    pump = Pump(job)
    release.set()
    assert job.done.wait(WAIT_S)
    assert pump.send(Event.ESC) == Step(returns=FINISHED, ended=True, result="mesh")


def test_blender_cancelling_the_operator_stops_the_job_without_a_report():
    job, release = held_job("Reconstruct", "Fusing", 0.4, raise_cancelled_if)
    pump = Pump(job)
    pump.send()
    assert pump.flow.abort() == Step(returns=CANCELLED, ended=True, restore=True)
    assert job.cancel.is_set()
    release.set()
    assert job.done.wait(WAIT_S) and job.cancelled
    assert pump.send() == Step(returns=PASS_THROUGH)


# --- the server dying mid-job ------------------------------------------------------------


@pytest.fixture
def dying_server():
    """A listener that takes a request, reports progress, then closes the connection
    without answering (a crashed server) once the test sets 'die'."""
    listener = socket.create_server(("127.0.0.1", 0))
    die = threading.Event()

    def serve():
        with listener:
            connection, _ = listener.accept()
            with connection:
                request = protocol.recv_message(connection)
                protocol.send_message(connection, protocol.make_reply(request.header["id"], "progress",
                                                                      message="Fusing", fraction=0.5))
                die.wait(WAIT_S)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], die
    die.set()
    thread.join(WAIT_S)


def test_the_server_dying_mid_job_is_one_clear_sentence(dying_server, box):
    port, die = dying_server
    job = jobs.submit("Reconstruct", lambda progress, cancel: client.reconstruct(
        "127.0.0.1", port, "token", box, on_progress=progress, cancel=cancel))
    pump = Pump(job)
    wait_for(lambda: job.message == "Fusing", "the server's progress")
    assert pump.send().status == "Reconstruct: Fusing (50%), 0 s  (Esc to cancel)"
    die.set()
    end = pump.until_end()
    sentence = (f"The Sketch2Mesh server at 127.0.0.1:{port} closed the connection before answering; "
                "it may have crashed, see its log.")
    assert end == Step(returns=CANCELLED, ended=True, restore=True, report=Report("ERROR", sentence))


@pytest.mark.slow
def test_a_real_server_killed_mid_job_is_one_clear_sentence(own_server, box):
    settings = server_process.Settings(port=own_server["port"], auto_start=False)
    work = jobs.reconstruct_work(settings, box, "hull", "high", 0)
    at_server, killed = threading.Event(), threading.Event()

    def hold_at_the_servers_first_progress(progress, cancel):
        def relay(message, fraction):
            progress(message, fraction)
            if message != "Connecting to the server" and not at_server.is_set():
                at_server.set()
                killed.wait(WAIT_S)
        return work(relay, cancel)

    job = jobs.submit("Reconstruct", hold_at_the_servers_first_progress)
    pump = Pump(job)
    assert at_server.wait(WAIT_S)
    assert pump.send().status.startswith(f"Reconstruct: {job.message} (")
    own_server["process"].kill()
    own_server["process"].wait(WAIT_S)
    killed.set()
    end = pump.until_end()
    assert (end.returns, end.ended, end.restore, end.result, end.report.level) == (CANCELLED, True, True, None, "ERROR")
    assert end.report.message.startswith(f"The Sketch2Mesh server at 127.0.0.1:{own_server['port']} closed the "
                                         "connection")


# --- Fit to strokes: live shapes, then Esc keeps the best one ----------------------------

JOB_METHODS = ("prepare", "modal", "cancel", "apply_step", "show_live", "abandon", "finish", "_end")


def operator_shell(operator: type, **properties):
    """The operator's own methods on a plain object: bpy makes Operator instances only
    inside an operator call, and in background mode it never calls modal()."""
    namespace = {name: getattr(operator, name) for name in JOB_METHODS}
    namespace["report"] = lambda self, levels, message: self.reports.append((*levels, message))
    shell = type(f"{operator.__name__}_shell", (), namespace)()
    shell.reports, shell._timer = [], None
    shell.__dict__.update(properties)
    return shell


def fitted_world(obj) -> np.ndarray | None:
    """The world-space vertices of the object's "Fitted" shape key, or None without one."""
    keys = obj.data.shape_keys
    if keys is None or mesh_import.FITTED_KEY not in keys.key_blocks:
        return None
    data = keys.key_blocks[mesh_import.FITTED_KEY].data
    co = np.empty(len(data) * 3, np.float32)
    data.foreach_get("co", co)
    matrix = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


@pytest.fixture
def fit_shell(draw_sketch):
    """A sphere (moved, so world and local differ) with a sketch to fit to, and the Fit to
    strokes operator's methods prepared for it as invoke() would."""
    sketch = draw_sketch()
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.3, location=(0.5, 0.0, 0.2), segments=16, ring_count=8)
    obj = bpy.context.view_layer.objects.active
    shell = operator_shell(operators.SKETCH2MESH_OT_fit_strokes, iterations=2000, sketch=sketch.name)
    work = shell.prepare(bpy.context)
    assert work is not None, shell.reports
    basis = mesh_import.world_triangles(obj)[0]
    return SimpleNamespace(shell=shell, obj=obj, basis=basis, work=work)


FIT_REPORT = {"iou_before": {"front": 0.5, "side": 0.6}, "iou_after": {"front": 0.8, "side": 0.9},
              "flipped_faces": 0, "iterations": 40}


def live_fit(preview: jobs.Latest, shapes: list[np.ndarray], best: np.ndarray, error: Exception | None = None):
    """A fit that streams ``shapes`` in two bursts (the first alone, then the rest), each when
    its gate opens, then, when 'answer' opens, raises ``error`` or answers with ``best``
    (cancelled if the user cancelled). Returns the work, the two gates, the two bursts'
    'sent' events and 'answer'."""
    bursts, sent, answer = [gate(), gate()], [threading.Event(), threading.Event()], gate()

    def work(progress, cancel):
        for burst, go, done in zip((shapes[:1], shapes[1:]), bursts, sent):
            go.wait(WAIT_S)
            for i, shape in enumerate(burst):
                progress(f"Iteration {i}", 0.1)
                preview.put(shape)
            done.set()
        answer.wait(WAIT_S)
        if error is not None:
            raise error
        return client.FitResult(best, {"fit": {**FIT_REPORT, "cancelled": cancel.is_set()}})

    return work, bursts, sent, answer


def test_a_fit_shows_live_shapes_then_esc_keeps_the_best_one(fit_shell):
    shell, obj, basis = fit_shell.shell, fit_shell.obj, fit_shell.basis
    shapes = [basis * 1.1, basis * 1.2, basis * 1.3]
    work, bursts, sent, answer = live_fit(shell._preview, shapes, best=shapes[1])
    job = jobs.submit("Fit to strokes", work)
    pump = Pump(job, shell._preview)
    shell._flow = pump.flow

    assert shell.modal(bpy.context, TIMER) == {"RUNNING_MODAL"}
    assert fitted_world(obj) is None                          # nothing streamed yet: keys untouched
    bursts[0].set()
    assert sent[0].wait(WAIT_S)
    step = pump.send()
    np.testing.assert_allclose(step.live, shapes[0])
    assert shell.apply_step(bpy.context, step) == {"RUNNING_MODAL"}
    np.testing.assert_allclose(fitted_world(obj), shapes[0], atol=1e-5)
    assert obj.data.shape_keys.key_blocks[mesh_import.FITTED_KEY].value == 1.0
    bursts[1].set()
    assert sent[1].wait(WAIT_S)
    assert shell.modal(bpy.context, MOUSE) == {"PASS_THROUGH"}             # other events take no shape
    np.testing.assert_allclose(fitted_world(obj), shapes[0], atol=1e-5)
    assert shell.modal(bpy.context, TIMER) == {"RUNNING_MODAL"}
    np.testing.assert_allclose(fitted_world(obj), shapes[2], atol=1e-5)   # only the newest is drawn
    assert pump.send().live is None                                          # and only once

    assert shell.modal(bpy.context, ESC) == {"RUNNING_MODAL"}              # the server is still answering
    assert job.cancel.is_set()
    answer.set()
    assert job.done.wait(WAIT_S)
    assert shell.modal(bpy.context, TIMER) == {"FINISHED"}                 # so Blender pushes one undo step
    np.testing.assert_allclose(fitted_world(obj), shapes[1], atol=1e-5)   # the best, not the last shown
    np.testing.assert_allclose(mesh_import.world_triangles(obj)[0], basis, atol=1e-5)   # the basis is kept
    assert obj[mesh_import.FIT_PROPERTY]["cancelled"] is True
    assert shell.reports[-1][0] == "INFO" and "(cancelled, best so far)" in shell.reports[-1][1]


def test_a_fit_that_fails_after_live_shapes_puts_the_keys_back(fit_shell):
    shell, obj, basis = fit_shell.shell, fit_shell.obj, fit_shell.basis
    sentence = "The Sketch2Mesh server closed the connection."
    work, bursts, sent, answer = live_fit(shell._preview, [basis * 1.1, basis * 1.2], best=basis,
                                          error=client.ServerError("disconnected", sentence))
    job = jobs.submit("Fit to strokes", work)
    shell._flow = job_flow.JobFlow(job, FakeClock(), shell._preview)
    for burst, done in zip(bursts, sent):
        burst.set()
        assert done.wait(WAIT_S)
        assert shell.modal(bpy.context, TIMER) == {"RUNNING_MODAL"}
    np.testing.assert_allclose(fitted_world(obj), basis * 1.2, atol=1e-5)
    answer.set()
    assert job.done.wait(WAIT_S)
    assert shell.modal(bpy.context, TIMER) == {"CANCELLED"}
    assert obj.data.shape_keys is None       # as before the fit: no keys at all
    assert shell.reports == [("ERROR", sentence)]


def test_blender_cancelling_a_fit_puts_the_keys_back(fit_shell):
    shell, obj, basis = fit_shell.shell, fit_shell.obj, fit_shell.basis
    work, bursts, sent, _ = live_fit(shell._preview, [basis * 1.1], best=basis)
    job = jobs.submit("Fit to strokes", work)
    shell._flow = job_flow.JobFlow(job, FakeClock(), shell._preview)
    bursts[0].set()
    assert sent[0].wait(WAIT_S)
    shell.modal(bpy.context, TIMER)
    assert fitted_world(obj) is not None
    shell.cancel(bpy.context)
    assert job.cancel.is_set() and obj.data.shape_keys is None and shell.reports == []


@pytest.mark.slow
def test_a_real_fit_streams_shapes_and_esc_keeps_the_best(served_scene, fit_shell):
    shell, obj, basis = fit_shell.shell, fit_shell.obj, fit_shell.basis
    job = jobs.submit("Fit to strokes", fit_shell.work)
    pump = Pump(job, shell._preview)
    shell._flow = pump.flow
    deadline = time.monotonic() + WAIT_S
    while fitted_world(obj) is None and time.monotonic() < deadline:
        assert shell.modal(bpy.context, TIMER) == {"RUNNING_MODAL"}, shell.reports
        time.sleep(0.01)
    live = fitted_world(obj)
    assert live is not None and not np.allclose(live, basis, atol=1e-4)   # the sphere moved on screen
    shell.modal(bpy.context, ESC)
    result = pump.until_end()
    assert (result.returns, result.restore, result.report) == (FINISHED, False, None)
    assert result.result.info["fit"]["cancelled"] is True
    assert shell.apply_step(bpy.context, result) == {"FINISHED"}
    np.testing.assert_allclose(fitted_world(obj), result.result.vertices, atol=1e-5)
    assert obj[mesh_import.FIT_PROPERTY]["cancelled"] is True

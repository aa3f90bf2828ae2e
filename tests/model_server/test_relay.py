"""The job relay driven by hand: a fake clock, fake workers and no sockets or sleeping.

Each test plays the connection (``Watch.step`` with the job's next event, or None for a
silence) and the worker (``Relay.take`` and ``Relay.finish``) in turn, and checks what the
connection is told: queue places and heartbeats, progress, results, cancels answered by
the job or by the relay, abandoned and stalled jobs, and a connection that went away.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sketch2mesh_addon import protocol
from sketch2mesh_addon.protocol import ProtocolError

from model_server.service.limits import Limits
from model_server.service.refusals import Busy
from model_server.service.relay import CANCEL_ANSWER_S, CANCEL_WAKE, Job, Relay, Step, Watch

LIMITS = Limits(heartbeat_s=1.0, stall_s=300.0, max_queued_jobs=2)


class FakeClock:
    """Seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeWorker:
    """A worker thread as the relay sees it: alive until the test says it ended."""

    def __init__(self) -> None:
        self.alive = True

    def is_alive(self) -> bool:
        return self.alive


class Bench:
    """A relay with a fake clock; counts the fresh workers it asks for and what it logs."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.started_workers = 0
        self.said: list[str] = []
        self.stopping = threading.Event()
        self.relay = Relay(LIMITS, self._start_worker, self.clock, say=lambda text, key=None: self.said.append(text),
                           stopping=self.stopping)

    def _start_worker(self) -> None:
        self.started_workers += 1

    def submit(self, request_id: str, op: str = "reconstruct") -> tuple[Job, Watch]:
        job = Job(request_id, op, {"front": []}, {}, mesh=("vertices", "faces") if op == "fit" else None)
        return job, self.relay.submit(job)

    def run(self, worker: FakeWorker | None = None) -> Job:
        """A worker takes the next job (one must be queued: take would wait)."""
        return self.relay.take(worker or FakeWorker())


@pytest.fixture
def bench() -> Bench:
    return Bench()


def next_event(job: Job):
    """The job's next event, which must be there already."""
    return job.events.get_nowait()


def heartbeat(watch: Watch) -> dict:
    """The connection waits out a silence; the heartbeat it sends."""
    assert watch.timeout() == LIMITS.heartbeat_s
    step = watch.step(None)
    assert step.reply is not None and not step.final
    header, arrays = step.reply
    assert header["kind"] == "progress" and arrays is None
    return header


def error_of(step: Step) -> tuple[str, str]:
    """The code and sentence of a final error reply."""
    assert step.final and step.reply is not None
    header, _ = step.reply
    assert header["kind"] == "error"
    return header["error"]["code"], header["error"]["message"]


def result(request_id: str, what: str = "mesh") -> tuple[dict, dict | None]:
    return protocol.make_reply(request_id, "result", result={"what": what}), None


def progress(request_id: str, message: str, fraction: float) -> tuple[dict, dict | None]:
    return protocol.make_reply(request_id, "progress", message=message, fraction=fraction), None


# --- the queue and the heartbeat ---------------------------------------------------------------

def test_queued_jobs_hear_their_place_until_they_run(bench):
    a, watch_a = bench.submit("a")
    b, watch_b = bench.submit("b")
    assert bench.relay.active() == ["a", "b"]
    first = heartbeat(watch_a)
    assert (first["message"], first["fraction"], first["queue_position"]) == ("Queued", 0.0, 0)
    second = heartbeat(watch_b)
    assert (second["message"], second["queue_position"]) == ("Queued: 1 job(s) ahead", 1)
    assert bench.run() is a and a.started.is_set() and a.heard == bench.clock.now
    assert heartbeat(watch_b)["queue_position"] == 1          # a still runs ahead of it
    assert bench.relay.finish(a, result("a")) is False
    assert heartbeat(watch_b)["queue_position"] == 0
    assert bench.run() is b


def test_progress_is_relayed_and_repeated_in_the_silences(bench):
    a, watch = bench.submit("a")
    bench.run()
    a.events.put(progress("a", "Fusing the views", 0.45))
    step = watch.step(next_event(a))
    assert step.reply[0]["message"] == "Fusing the views" and not step.final
    again = heartbeat(watch)
    assert (again["message"], again["fraction"], again["queue_position"]) == ("Fusing the views", 0.45, 0)


def test_the_result_ends_the_watch_and_the_job(bench):
    a, watch = bench.submit("a")
    bench.run()
    assert bench.relay.finish(a, result("a")) is False
    assert bench.relay.active() == []
    step = watch.step(next_event(a))
    assert step.final and step.reply[0]["kind"] == "result"


def test_a_second_job_with_the_same_id_is_refused_and_a_full_queue_is_busy(bench):
    bench.submit("a")
    with pytest.raises(ProtocolError) as same:
        bench.submit("a")
    assert same.value.code == "bad_request"
    bench.submit("b")
    with pytest.raises(Busy) as full:
        bench.submit("c")
    assert "queue is full (2 waiting" in full.value.message
    bench.run()                                     # a runs: one place in the queue is free again
    bench.submit("c")


# --- cancel --------------------------------------------------------------------------------------

def test_a_cancelled_queued_job_is_answered_at_once_and_skipped(bench):
    a, _ = bench.submit("a")
    assert bench.run() is a
    b, watch_b = bench.submit("b")
    c, _ = bench.submit("c", op="fit")
    assert bench.relay.cancel("b") and b.cancel.is_set()
    step = watch_b.step(next_event(b))
    assert error_of(step) == ("cancelled", "The job was cancelled.")
    assert b.abandoned and b.strokes is None and bench.relay.active() == ["a", "c"]
    assert bench.started_workers == 0               # b never ran: no fresh worker needed
    bench.relay.finish(a, result("a"))
    assert bench.run() is c                         # b was skipped
    assert not bench.relay.cancel("b")              # gone


def test_a_cancelled_running_job_that_answers_in_time_gives_its_own_answer(bench):
    a, watch = bench.submit("a", op="fit")
    bench.run()
    bench.relay.cancel("a")
    assert watch.step(next_event(a)) == Step()      # nothing to send yet: the job may answer itself
    assert watch.timeout() == pytest.approx(CANCEL_ANSWER_S["fit"])
    bench.clock.now += 0.3
    assert watch.timeout() == pytest.approx(CANCEL_ANSWER_S["fit"] - 0.3)
    assert bench.relay.finish(a, result("a", "best so far")) is False
    step = watch.step(next_event(a))
    assert step.final and step.reply[0]["result"] == {"what": "best so far"}
    assert bench.started_workers == 0


def test_a_cancelled_running_job_that_does_not_answer_is_abandoned(bench):
    a, watch = bench.submit("a")
    b, _ = bench.submit("b")
    worker = FakeWorker()
    bench.run(worker)
    bench.relay.cancel("a")
    watch.step(next_event(a))
    bench.clock.now += CANCEL_ANSWER_S["reconstruct"] + 0.01
    assert watch.timeout() == 0.0
    assert error_of(watch.step(None))[0] == "cancelled"
    assert a.abandoned and bench.started_workers == 1 and bench.relay.active() == ["b"]
    assert "job a cancelled" in bench.said
    assert bench.run() is b                         # the fresh worker takes the next job at once
    assert bench.relay.finish(a, result("a")) is True   # the old worker's late answer is dropped ...
    assert a.events.empty()                         # ... and it ends


def test_two_abandoned_jobs_never_run_beside_a_third(bench):
    a, watch_a = bench.submit("a")
    b, watch_b = bench.submit("b")
    first = FakeWorker()
    bench.run(first)
    bench.relay.cancel("a")
    watch_a.step(next_event(a))
    bench.clock.now += 1.0
    assert watch_a.step(None).final                 # a abandoned, its worker still running
    bench.run(FakeWorker())                         # b on the fresh worker
    bench.relay.cancel("b")
    watch_b.step(next_event(b))
    bench.clock.now += 1.0
    assert watch_b.step(None) == Step()             # not abandoned: a's worker still runs
    assert not b.abandoned and bench.started_workers == 1
    assert heartbeat(watch_b)["queue_position"] == 0    # b's client keeps hearing from the server
    first.alive = False
    assert bench.relay.abandon(b)                   # once a's worker has ended, b may be given up
    assert bench.started_workers == 2


def test_a_job_that_answered_just_before_the_deadline_is_not_abandoned(bench):
    a, watch = bench.submit("a")
    bench.run()
    bench.relay.cancel("a")
    watch.step(next_event(a))
    bench.relay.finish(a, result("a"))              # its answer is queued behind the deadline
    bench.clock.now += 1.0
    assert watch.step(None) == Step()
    assert watch.step(next_event(a)).final and not a.abandoned


# --- stalls, lost connections, stopping ------------------------------------------------------------

def test_a_running_job_silent_for_stall_s_is_stopped(bench):
    a, watch = bench.submit("a")
    bench.run()
    bench.clock.now += 200.0
    bench.relay.hear(a)                             # it reported: not stalled
    bench.clock.now += 200.0
    assert heartbeat(watch)["queue_position"] == 0
    bench.clock.now += 101.0
    code, message = error_of(watch.step(None))
    assert code == "internal" and "made no progress for 300 s" in message
    assert a.abandoned and not a.cancel.is_set() and bench.started_workers == 1


def test_a_queued_job_never_stalls(bench):
    bench.submit("a")
    b, watch = bench.submit("b")
    bench.run()
    bench.clock.now += 10 * LIMITS.stall_s
    assert heartbeat(watch)["queue_position"] == 1


def test_a_lost_connection_cancels_its_job_unless_it_was_given_up(bench):
    a, watch_a = bench.submit("a")
    b, watch_b = bench.submit("b")
    watch_a.lost()
    assert a.cancel.is_set()
    bench.relay.abandon(b)
    watch_b.lost()
    assert not b.cancel.is_set()


def test_closing_cancels_every_job_and_ends_the_workers(bench):
    a, watch_a = bench.submit("a")
    b, _ = bench.submit("b")
    bench.run()
    bench.stopping.set()                            # as the server stops: then it closes the relay
    bench.relay.close()
    assert a.cancel.is_set() and b.cancel.is_set()
    assert next_event(a) is CANCEL_WAKE
    assert bench.relay.take() is None               # b is never started ...
    assert bench.relay.take() is None               # ... and every other worker ends too


def test_a_stopping_server_starts_no_more_jobs(bench):
    a, _ = bench.submit("a")
    bench.stopping.set()
    assert bench.relay.take() is None and not a.started.is_set()
    with pytest.raises(queue.Empty):
        next_event(a)


def test_the_rooms_that_admit_budget_and_relay_load_no_core_and_no_socket():
    """Admission, the byte budget and the relay are the service's bookkeeping: importing
    them loads none of the core (pipeline, torch, open3d, scipy), and the relay no socket."""
    code = ("import sys; import model_server.service.admission, model_server.service.budget, "
            "model_server.service.relay; print(sorted(m for m in ('model_server.reconstruct', 'torch', 'open3d', "
            "'scipy') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
    relay_source = (Path(__file__).parents[2] / "model_server" / "service" / "relay.py").read_text()
    assert "import socket" not in relay_source

"""The job relay: the queue of jobs, the workers that run them, and each connection's
watch on its own job. No sockets and no sleeping: time comes from an injected ``clock``
and workers from an injected ``start_worker``, so tests drive every transition by hand.

One worker runs one job at a time, fed by a queue (:meth:`Relay.submit`,
:meth:`Relay.take`, :meth:`Relay.finish`). The connection that asked for a job holds a
:class:`Watch`: it waits on the job's events at most :meth:`Watch.timeout` seconds, and
each :meth:`Watch.step` says what to send. So the connection hears from the server at
least every ``heartbeat_s`` (its place in the queue, or its last progress again). A
cancel is answered within ``CANCEL_ANSWER_S``: with the job's own last word if it comes by
then (a fit's best shape so far), else with ``cancelled`` while the job is abandoned. A
running job silent for ``stall_s`` is abandoned too, answered with ``internal`` and a
sentence. An abandoned job that waits is skipped; one that
runs is left to its worker, which drops it at its next checkpoint, while a fresh worker
takes the next job at once (never two abandoned beside a third).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from sketch2mesh_addon import protocol
from sketch2mesh_addon.protocol import ProtocolError

from model_server.service import refusals
from model_server.service.limits import Limits
from model_server.service.refusals import Busy, Reply

# How long a cancelled job may take to answer before it is abandoned (a fit's answer is its best shape so far).
CANCEL_ANSWER_S = {"reconstruct": 0.5, "fit": 0.8}
CANCEL_WAKE = object()   # put in a job's events to wake its connection when the job is cancelled


class Worker(Protocol):
    """What the relay knows of a worker: whether it still runs (a thread)."""

    def is_alive(self) -> bool: ...


@dataclass
class Job:
    """One queued job (``reconstruct`` or ``fit``) and the replies it streams back to its connection."""

    request_id: str
    op: str
    strokes: dict | None
    params: dict
    mesh: tuple | None = None      # fit: (vertices, faces)
    cancel: threading.Event = field(default_factory=threading.Event)
    events: queue.Queue = field(default_factory=queue.Queue)   # replies, and CANCEL_WAKE
    started: threading.Event = field(default_factory=threading.Event)
    seq: int = 0
    worker: Worker | None = None
    heard: float = 0.0             # when its worker last reported (the relay's clock)
    finished: bool = False         # its worker has its reply (under the relay's lock)
    abandoned: bool = False        # cancelled and answered: its worker drops it (under the relay's lock)


@dataclass(frozen=True)
class Step:
    """What a connection does after one event: send ``reply`` (when there is one), and
    stop watching once it was the last (``final``)."""

    reply: Reply | None = None
    final: bool = False


class Relay:
    """The jobs of one server: queued, running, and abandoned ones' workers."""

    def __init__(self, limits: Limits, start_worker: Callable[[], None], clock: Callable[[], float] = time.monotonic,
                 say: Callable[..., None] = lambda text, key=None: None, stopping: threading.Event | None = None):
        self.limits, self.clock = limits, clock
        self._start_worker, self._say = start_worker, say
        self._stopping = stopping or threading.Event()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._active: dict[str, Job] = {}
        self._seq = 0
        self._lock = threading.Lock()
        self._abandoned_workers: list[Worker] = []

    # --- the connections' side ---------------------------------------------------------

    def submit(self, job: Job) -> Watch:
        """Queue ``job`` and return its connection's watch on it; refuse a second job with
        the same id, and say busy when the queue is full."""
        with self._lock:
            if job.request_id in self._active:
                raise ProtocolError("bad_request", f"a job with id {job.request_id!r} is already running")
            queued = sum(not j.started.is_set() for j in self._active.values())
            if queued >= self.limits.max_queued_jobs:
                raise Busy(f"The Sketch2Mesh server is busy: its queue is full ({queued} waiting, the most it "
                           "holds); try again when a job has finished.")
            self._seq += 1
            job.seq = self._seq
            self._active[job.request_id] = job
            self._queue.put(job)
        return Watch(self, job)

    def active(self) -> list[str]:
        """The ids of the jobs queued or running (abandoned ones are not)."""
        with self._lock:
            return list(self._active)

    def ahead(self, job: Job) -> int:
        """How many jobs run or wait before ``job`` (0 once it runs)."""
        if job.started.is_set():
            return 0
        with self._lock:
            return sum(other.seq < job.seq for other in self._active.values())

    def cancel(self, request_id: str) -> bool:
        """Cancel a queued or running job; True if there was one. Its watch answers within
        ``CANCEL_ANSWER_S``."""
        with self._lock:
            job = self._active.get(request_id)
        if job is None:
            return False
        job.cancel.set()
        job.events.put(CANCEL_WAKE)
        return True

    def close(self) -> None:
        """Cancel every job (each waiting client hears that its job ends) and let the workers end."""
        for request_id in self.active():
            self.cancel(request_id)
        self._queue.put(None)

    def abandon(self, job: Job, queued_only: bool = False) -> bool:
        """Give up on a job that has not answered: a queued one is skipped; a running one
        (unless ``queued_only``) is left to its worker, which drops it at its next
        checkpoint, while a fresh worker takes the next job at once. False when the job
        answered after all, or when an earlier abandoned worker still runs (then it is
        waited for: two abandoned jobs never run beside a third)."""
        with self._lock:
            if job.finished or (queued_only and job.started.is_set()):
                return False
            self._abandoned_workers = [w for w in self._abandoned_workers if w.is_alive()]
            if job.started.is_set():
                if self._abandoned_workers:
                    return False
                self._abandoned_workers.append(job.worker)
                self._start_worker()
            else:
                job.strokes = job.mesh = None     # it waits in the queue until a worker skips it: keep it small
            job.abandoned = True
            if self._active.get(job.request_id) is job:
                del self._active[job.request_id]
        self._say(f"job {job.request_id} cancelled", key="job cancelled")
        return True

    # --- the workers' side ---------------------------------------------------------------

    def take(self, worker: Worker | None = None) -> Job | None:
        """The next job to run, marked started on ``worker`` (the calling thread by
        default); waits for one. None once the server stops: the worker ends."""
        while True:
            job = self._queue.get()
            if job is None or self._stopping.is_set():
                self._queue.put(None)   # for the other workers
                return None
            with self._lock:
                if job.abandoned:
                    continue
                job.started.set()
                job.worker = worker or threading.current_thread()
                job.heard = self.clock()
            return job

    def hear(self, job: Job) -> None:
        """The job's worker reported: it is not stalled."""
        job.heard = self.clock()

    def finish(self, job: Job, reply: Reply) -> bool:
        """Hand the job's last reply to its connection, unless the job was abandoned; True
        when it was (its worker then ends: a fresh one has taken over)."""
        with self._lock:
            job.finished = True
            if self._active.get(job.request_id) is job:
                del self._active[job.request_id]
            abandoned = job.abandoned
        if not abandoned:
            job.events.put(reply)
        return abandoned


class Watch:
    """A connection's watch on its job: what to send after each event, or after a silence."""

    def __init__(self, relay: Relay, job: Job):
        self.relay, self.job = relay, job
        self.last = ("Queued", 0.0)            # the job's last progress: message, fraction
        self.answer_by: float | None = None    # after a cancel: when the job must have answered

    def timeout(self) -> float:
        """How long to wait for the job's next event before calling :meth:`step` with None."""
        if self.answer_by is None:
            return self.relay.limits.heartbeat_s
        return max(0.0, self.answer_by - self.relay.clock())

    def step(self, event: object = None) -> Step:
        """What to do after ``event`` (an item of ``job.events``), or after :meth:`timeout`
        passed in silence (None)."""
        job, relay = self.job, self.relay
        request_id = job.request_id
        if event is None:
            if self.answer_by is not None:
                if relay.abandon(job):
                    return Step(refusals.cancelled(request_id), final=True)
                self.answer_by = None    # it answered after all, or it must be waited for
                return Step()
            if job.started.is_set() and relay.clock() - job.heard > relay.limits.stall_s and relay.abandon(job):
                return Step((protocol.error_reply(request_id, "internal", (
                    f"The job made no progress for {relay.limits.stall_s:.0f} s and was stopped; try again, or "
                    "restart the server from the Sketch2Mesh panel.")), None), final=True)
            ahead = relay.ahead(job)
            message = f"Queued: {ahead} job(s) ahead" if ahead else self.last[0]
            return Step((protocol.make_reply(request_id, "progress", message=message, fraction=self.last[1],
                                             queue_position=ahead), None))
        if event is CANCEL_WAKE:
            if relay.abandon(job, queued_only=True):
                return Step(refusals.cancelled(request_id), final=True)
            self.answer_by = relay.clock() + CANCEL_ANSWER_S[job.op]   # its own answer, or ours
            return Step()
        header, _ = event
        if header["kind"] == "progress":
            self.last = (header["message"], header["fraction"])
        return Step(event, final=header["kind"] != "progress")

    def lost(self) -> None:
        """The connection is gone: cancel its job, unless it was given up already."""
        if not self.job.abandoned:
            self.job.cancel.set()

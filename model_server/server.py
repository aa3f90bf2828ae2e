"""The model server: a loopback socket that answers the add-on.

This is the service edge, with the command line: the only code that speaks the wire
protocol. The core raises :class:`model_server.errors.Refused`; here it becomes an error
reply with the same code and sentence.

One worker thread runs one job at a time on the device, fed by a queue. Every
connection has its own thread, so ``ping`` and ``cancel`` are answered while a job
runs, and a job's connection hears from the server at least every ``heartbeat_s``.
Nothing a client sends can stop the server or exhaust it (README, "Security"):

- a new connection must deliver its first frame's header within ``first_frame_s``, and
  the token is checked on that header before anything else is read; connections still
  waiting for their token are capped apart from authenticated ones (the oldest waiting
  one makes room for a newcomer), so idle or trickling peers cannot lock users out;
- a payload is read only after the token, into one buffer, and the bytes being read
  across all connections are bounded;
- a full server answers ``busy`` with a sentence; a malformed frame gets an error reply;
  a failing job gets an error reply; repeated complaints are rate-limited in the log.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import ipaddress
import os
import queue
import socket
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from sketch2mesh_addon import protocol
from sketch2mesh_addon.protocol import ProtocolError

from model_server import interrupt
from model_server.errors import Refused
from model_server.reconstruct import backends, pipeline, poisson_solver
from model_server.server_limits import Limits
from model_server.server_log import ServerLog

SERVER_VERSION = "0.1.0"
# How long a cancelled job may take to answer before it is abandoned (a fit's answer is its best shape so far).
CANCEL_ANSWER_S = {"reconstruct": 0.5, "fit": 0.8}
FAULT_ENV = "SKETCH2MESH_FAULT"   # a test hook: "cuda_oom" makes the next job run out of GPU memory


class Cancelled(Exception):
    """Raised inside a job's progress callback once the job has been cancelled."""


class Busy(ProtocolError):
    """The server cannot take this now; the sentence says why and when to retry."""

    def __init__(self, message: str, request_id: str = ""):
        super().__init__("busy", message)
        self.request_id = request_id


@dataclass
class Job:
    """One queued job (``reconstruct`` or ``fit``) and the replies it streams back to its connection."""

    request_id: str
    op: str
    strokes: dict
    params: dict
    mesh: tuple | None = None      # fit: (vertices, faces)
    cancel: threading.Event = field(default_factory=threading.Event)
    events: queue.Queue = field(default_factory=queue.Queue)
    started: threading.Event = field(default_factory=threading.Event)
    seq: int = 0
    worker: threading.Thread | None = None
    heard: float = field(default_factory=time.monotonic)   # when its worker last reported
    finished: bool = False         # its worker has its reply (under the server's lock)
    abandoned: bool = False        # cancelled and answered: its worker drops it (under the server's lock)


CANCEL_WAKE = object()   # put in a job's events to wake its connection when the job is cancelled


class ByteBudget:
    """Payload bytes that may be held at once, across connections."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._cond = threading.Condition()

    def take(self, n: int, timeout: float) -> bool:
        """Reserve ``n`` bytes (at most the limit), waiting up to ``timeout`` s for others to give theirs back."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.used + n <= self.limit, timeout):
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        """Return ``n`` bytes taken before."""
        with self._cond:
            self.used -= n
            self._cond.notify_all()


def check_loopback(host: str) -> None:
    """Refuse to bind anywhere but loopback: the token is the only lock on the door."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve host {host!r}: {exc}") from None
    for info in infos:
        if not ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback:
            raise ValueError(f"the server binds to loopback only; {host!r} is not a loopback address")


class ModelServer:
    """Serve reconstruction requests on ``host:port`` to clients that present ``token``."""

    def __init__(self, host: str, port: int, token: str, device: str = "cpu", limits: Limits = Limits(),
                 log: ServerLog | None = None, weights: Path | None = None):
        check_loopback(host)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        if sys.platform != "win32":
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}. Is another server running? Pick another --port.") from None
        self._sock.listen(64)
        self.host, self.port = host, self._sock.getsockname()[1]
        self.token, self.device, self.limits = token, device, limits
        self.log = log or ServerLog()
        self.weights = weights
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._active: dict[str, Job] = {}
        self._seq = 0
        self._lock = threading.Lock()
        self._waiting: dict[socket.socket, float] = {}   # connections owing their token -> accept time
        self._authenticated = 0
        self._budget = ByteBudget(limits.max_bytes_in_flight)
        self._fault = os.environ.get(FAULT_ENV, "")
        self._stopping = threading.Event()
        self._abandoned_workers: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept connections until :meth:`stop` is called (or a client sends ``shutdown``)."""
        self._start_worker()
        self._sock.settimeout(0.5)
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                # A peer that reset before accept, or no file descriptors left for now:
                # neither may stop the server.
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    continue
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._say(f"cannot accept a connection: {exc.strerror}", key="accept failed")
                    time.sleep(0.1)
                    continue
                break
            self._admit(conn)
        self._sock.close()
        with self._lock:
            active = list(self._active)
        for request_id in active:      # every waiting client hears that its job ends
            self.cancel(request_id)
        self._jobs.put(None)

    def stop(self) -> None:
        """Ask the accept loop to end; running jobs are cancelled."""
        self._stopping.set()

    def watch_parent(self, pid: int) -> None:
        """Stop once process ``pid`` (the Blender that started this server) is gone, so a
        crashed or killed Blender leaves no server behind."""
        direct = os.getppid() == pid    # else started through a wrapper: watch the pid itself

        def gone() -> bool:
            if direct:
                return os.getppid() != pid
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
            return False

        def watch() -> None:
            while not self._stopping.wait(1.0):
                if gone():
                    self._say(f"parent process {pid} is gone; stopping")
                    self.stop()
        if sys.platform != "win32":
            threading.Thread(target=watch, name="s2m-parent", daemon=True).start()

    def _say(self, text: str, key: str | None = None) -> None:
        self.log.say(text, key)

    # --- connections -----------------------------------------------------------------

    def _admit(self, conn: socket.socket) -> None:
        """Take a new connection into the waiting pool, evicting the oldest waiter if full."""
        with self._lock:
            if len(self._waiting) >= self.limits.max_unauthenticated:
                oldest = min(self._waiting, key=self._waiting.get)
                self._waiting.pop(oldest)
                _hang_up(oldest)
            self._waiting[conn] = time.monotonic()
        try:
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()
        except RuntimeError:        # no thread to spare: this connection cannot be served now
            with self._lock:
                self._waiting.pop(conn, None)
            conn.close()

    def _serve_connection(self, conn: socket.socket) -> None:
        authenticated = False
        try:
            deadline = time.monotonic() + self.limits.first_frame_s
            while not self._stopping.is_set():
                try:
                    header, plen = protocol.read_header(conn, self.limits.max_frame, deadline,
                                                        protocol.MAX_REQUEST_HEADER)
                except ProtocolError as exc:
                    self._refuse(conn, "", exc, drain=authenticated)
                    return
                except socket.timeout:
                    if not authenticated:
                        self._refuse(conn, "", ProtocolError(
                            "timeout", f"No complete request header within {self.limits.first_frame_s:.0f} s."),
                            drain=False)
                    return
                except (ConnectionError, OSError):
                    return
                request_id = protocol.request_id_of(header)
                if not protocol.tokens_match(protocol.request_token(header), self.token):
                    del header
                    self._refuse(conn, request_id, ProtocolError(
                        "bad_token", "The server rejected the token; restart the server from the add-on or check the "
                        "token file."), drain=False)
                    return
                if not authenticated:
                    self._authenticate(conn, request_id)
                    authenticated = True
                if not self._handle(conn, header, plen):
                    return
                deadline = time.monotonic() + self.limits.idle_s
        except Busy as exc:
            self._refuse(conn, exc.request_id, exc)
        except ConnectionError:
            pass
        except Exception:
            self._say("connection handler failed:\n" + traceback.format_exc(), key="handler")
        finally:
            with self._lock:
                if self._waiting.pop(conn, None) is None and authenticated:
                    self._authenticated -= 1
            conn.close()

    def _authenticate(self, conn: socket.socket, request_id: str) -> None:
        """Move a connection that showed the token from the waiting pool to the authenticated one."""
        with self._lock:
            if self._waiting.pop(conn, None) is None:
                raise ConnectionError("evicted while its header was read")
            if self._authenticated >= self.limits.max_connections:
                raise Busy(f"The Sketch2Mesh server is busy: {self._authenticated} connections are open, the most it "
                           "serves at once; try again in a moment.", request_id)
            self._authenticated += 1

    def _refuse(self, conn: socket.socket, request_id: str, exc: ProtocolError, drain: bool = True) -> None:
        """Answer a frame that cannot be served, then hang up: with ``drain``, politely (an
        authenticated peer may still be sending its payload and should see our answer)."""
        self._say(f"refused a frame: {exc.code}: {exc.message[:200]}", key=f"refused {exc.code}")
        if self._send(conn, protocol.error_reply(request_id, exc.code, exc.message[:1000])):
            _hang_up(conn, drain_s=0.5 if drain else 0.0)

    def _handle(self, conn: socket.socket, header: dict, plen: int) -> bool:
        """Read the payload of an authenticated frame and answer it. False: close the connection
        (after any refusal: its payload may still be on the way)."""
        request_id = protocol.request_id_of(header)
        try:
            request_id, op, _, params = protocol.check_request(header)
            with self._room(plen):
                job = self._read_job(conn, request_id, op, params, header, plen)
            if job is not None:
                return self._run(conn, job)
            if op == "ping":
                return self._send(conn, protocol.make_reply(request_id, "result", result=self.status()))
            if op == "cancel":
                target = params.get("target")
                if not isinstance(target, str):
                    raise ProtocolError("bad_request", "cancel needs params.target, the id of the job to cancel")
                return self._send(conn, protocol.make_reply(request_id, "result", result={"cancelled": self.cancel(target)}))
            self._send(conn, protocol.make_reply(request_id, "result", result={"stopping": True}))   # shutdown
            self.stop()
            return False
        except ProtocolError as exc:
            self._refuse(conn, request_id, exc)
        except socket.timeout:
            self._refuse(conn, request_id, ProtocolError("timeout", "The request's payload arrived too slowly."))
        except (ConnectionError, OSError):
            pass
        except Exception:
            self._say("a request could not be read:\n" + traceback.format_exc(), key="unreadable request")
            self._refuse(conn, request_id, ProtocolError("bad_request", "The server could not read this request."))
        return False

    @contextmanager
    def _room(self, plen: int) -> Iterator[None]:
        """Hold ``plen`` bytes of the budget of bytes in flight, or say the server is busy."""
        if plen > self._budget.limit:
            raise ProtocolError("too_large", f"a payload of {plen} bytes is more than the server reads at once")
        if not self._budget.take(plen, self.limits.room_wait_s):
            raise Busy("The Sketch2Mesh server is busy receiving other large requests; try again in a moment.")
        try:
            yield
        finally:
            self._budget.give(plen)

    def _read_job(self, conn: socket.socket, request_id: str, op: str, params: dict, header: dict,
                  plen: int) -> Job | None:
        """Read the frame's payload into one buffer and make its job (None for the ops
        that are not jobs); the job holds validated copies, so the buffer goes with this call."""
        deadline = time.monotonic() + self.limits.first_frame_s + plen / self.limits.min_rate
        arrays = protocol.read_payload(conn, header, plen, self.limits.max_frame, deadline)
        if op not in ("reconstruct", "fit"):
            return None
        strokes = protocol.unpack_strokes(arrays, self.limits.max_strokes, self.limits.max_points)
        protocol.check_strokes(strokes, self.limits.max_strokes, self.limits.max_points)
        if op == "fit":
            return Job(request_id, op, strokes, read_fit_params(params),
                       protocol.unpack_mesh(arrays, self.limits.max_fit_faces))
        return Job(request_id, op, strokes, read_reconstruct_params(params))

    def _run(self, conn: socket.socket, job: Job) -> bool:
        """Queue ``job`` and relay its replies until its result or error, speaking at least
        every ``heartbeat_s`` (its place in the queue, or its last progress again)."""
        request_id = job.request_id
        with self._lock:
            if request_id in self._active:
                raise ProtocolError("bad_request", f"a job with id {request_id!r} is already running")
            queued = sum(not j.started.is_set() for j in self._active.values())
            if queued >= self.limits.max_queued_jobs:
                raise Busy(f"The Sketch2Mesh server is busy: its queue is full ({queued} waiting, the most it "
                           "holds); try again when a job has finished.")
            self._seq += 1
            job.seq = self._seq
            self._active[request_id] = job
            self._jobs.put(job)
        last, answer_by = ("Queued", 0.0), None
        while True:
            wait = self.limits.heartbeat_s if answer_by is None else max(0.0, answer_by - time.monotonic())
            try:
                event = job.events.get(timeout=wait)
            except queue.Empty:
                if answer_by is not None:
                    if self._abandon(job):
                        return self._send(conn, protocol.error_reply(request_id, "cancelled", "The job was cancelled."))
                    answer_by = None    # it answered after all, or it must be waited for
                    continue
                if job.started.is_set() and time.monotonic() - job.heard > self.limits.stall_s and self._abandon(job):
                    return self._send(conn, protocol.error_reply(request_id, "internal", (
                        f"The job made no progress for {self.limits.stall_s:.0f} s and was stopped; try again, or "
                        "restart the server from the Sketch2Mesh panel.")))
                ahead = self._ahead(job)
                message = f"Queued: {ahead} job(s) ahead" if ahead else last[0]
                event = protocol.make_reply(request_id, "progress", message=message, fraction=last[1],
                                            queue_position=ahead), None
            if event is CANCEL_WAKE:
                if self._abandon(job, queued_only=True):
                    return self._send(conn, protocol.error_reply(request_id, "cancelled", "The job was cancelled."))
                answer_by = time.monotonic() + CANCEL_ANSWER_S[job.op]   # its own answer, or ours
                continue
            header, out_arrays = event
            if header["kind"] == "progress" and "queue_position" not in header:
                last = (header["message"], header["fraction"])
            if not self._send(conn, header, out_arrays):
                job.cancel.set()
                return False
            if header["kind"] != "progress":
                return True

    def _ahead(self, job: Job) -> int:
        """How many jobs run or wait before ``job`` (0 once it runs)."""
        if job.started.is_set():
            return 0
        with self._lock:
            return sum(other.seq < job.seq for other in self._active.values())

    @staticmethod
    def _send(conn: socket.socket, header: dict, arrays: dict | None = None) -> bool:
        try:
            conn.settimeout(30.0)
            protocol.send_message(conn, header, arrays)
            return True
        except OSError:
            return False

    # --- jobs --------------------------------------------------------------------------

    def status(self) -> dict:
        """What ``ping`` answers."""
        with self._lock:
            active = list(self._active)
        return {"server": SERVER_VERSION, "protocol": protocol.PROTOCOL_VERSION, "device": self.device,
                "pid": os.getpid(), "jobs": active, "heartbeat_s": self.limits.heartbeat_s}

    def cancel(self, request_id: str) -> bool:
        """Cancel a queued or running job; True if there was one. Its connection answers
        within ``CANCEL_ANSWER_S``: with the job's own last word if it comes by then (a
        fit's best shape so far), else with ``cancelled`` while the job is abandoned."""
        with self._lock:
            job = self._active.get(request_id)
        if job is None:
            return False
        job.cancel.set()
        job.events.put(CANCEL_WAKE)
        return True

    def _abandon(self, job: Job, queued_only: bool = False) -> bool:
        """Give up on a job that has not answered: a queued one is skipped; a running one
        (unless ``queued_only``) is left to its worker, which drops it at its next
        checkpoint, while a fresh worker takes the next job at once. False when the job
        answered after all, or when an earlier abandoned worker still runs (then it is
        waited for: two abandoned jobs never run beside a third)."""
        with self._lock:
            if job.finished or (queued_only and job.started.is_set()):
                return False
            self._abandoned_workers = [t for t in self._abandoned_workers if t.is_alive()]
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

    def _start_worker(self) -> None:
        threading.Thread(target=self._work, name="s2m-worker", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._stopping.is_set():
                self._jobs.put(None)   # for the other workers
                return
            with self._lock:
                if job.abandoned:
                    continue
                job.started.set()
                job.worker = threading.current_thread()
                job.heard = time.monotonic()
            try:
                reply = self._run_job(job)
            except BaseException as exc:       # never leave a client without an answer
                reply = protocol.error_reply(job.request_id, "internal", f"The job stopped: {exc!r}"), None
            with self._lock:
                job.finished = True
                if self._active.get(job.request_id) is job:
                    del self._active[job.request_id]
                abandoned = job.abandoned
            if not abandoned:
                job.events.put(reply)
            del reply, job
            _release_memory()
            if abandoned:
                return     # a fresh worker took over while this one finished the cancelled job

    def _run_job(self, job: Job) -> tuple[dict, dict | None]:
        def progress(message: str, fraction: float, vertices=None) -> None:
            job.heard = time.monotonic()
            if job.cancel.is_set():
                raise Cancelled()
            self._inject_fault(message)
            arrays = None if vertices is None else {"vertices": np.asarray(vertices, np.float32)}
            job.events.put((protocol.make_reply(job.request_id, "progress", message=message, fraction=float(fraction)),
                            arrays))

        started = time.perf_counter()
        what = "Fit to strokes" if job.op == "fit" else "Reconstruction"
        try:
            with interrupt.cancellable(job.cancel):
                progress("Starting", 0.0)
                reply = self._fit(job, progress) if job.op == "fit" else self._reconstruct(job, progress)
        except (Cancelled, interrupt.Interrupted):
            return protocol.error_reply(job.request_id, "cancelled", "The job was cancelled."), None
        except (ProtocolError, Refused) as exc:
            return protocol.error_reply(job.request_id, exc.code, exc.message), None
        except Exception as exc:
            if _out_of_memory(exc):
                self._say(f"job {job.request_id} ran out of memory: {exc}", key="out of memory")
                _free_device_memory()
                return protocol.error_reply(job.request_id, "out_of_memory", (
                    f"{what} ran out of {'GPU ' if self.device == 'cuda' else ''}memory; try a lower detail or a "
                    "smaller mesh, or start the server with --device cpu.")), None
            self._say(f"job {job.request_id} failed:\n" + traceback.format_exc(), key="job failed")
            return protocol.error_reply(job.request_id, "internal", f"{what} failed inside the server: {exc}"), None
        self._say(f"job {job.request_id} ({job.op}) done in {time.perf_counter() - started:.2f} s", key="job done")
        return reply

    def _inject_fault(self, message: str) -> None:
        """The test hook of ``FAULT_ENV``: once, in the job's first stage, raise what a full GPU raises."""
        if self._fault == "cuda_oom" and message != "Starting":
            self._fault = ""
            import torch

            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated by {FAULT_ENV})")

    def _reconstruct(self, job: Job, progress) -> tuple[dict, dict]:
        result = pipeline.reconstruct_strokes(job.strokes, device=self.device, progress=progress, weights=self.weights,
                                              **job.params)
        summary = {"backend": result.backend, "device": result.device, "vertices": int(len(result.vertices)),
                   "faces": int(len(result.faces)), "timings_s": result.timings, "notes": result.notes,
                   "fusion": result.fusion}
        self._say(f"job {job.request_id}: surface from {result.fusion}", key="job surface")
        if result.fit:
            summary["fit"] = result.fit
        return (protocol.make_reply(job.request_id, "result", result=summary),
                {"vertices": result.vertices, "faces": result.faces})

    def _fit(self, job: Job, progress) -> tuple[dict, dict]:
        """Fit the request's mesh; a cancel stops the fit and returns the best shape so far."""
        from model_server.fit.optimiser import FitCancelled

        def fit_progress(message: str, fraction: float, vertices) -> None:
            try:
                progress(message, fraction, vertices)
            except Cancelled:
                raise FitCancelled() from None

        vertices, faces = job.mesh
        started = time.perf_counter()
        fitted = pipeline.fit_strokes(vertices, faces, job.strokes, device=self.device, progress=fit_progress,
                                      **job.params)
        defects = protocol.mesh_defects(faces)
        summary = {"device": self.device, "vertices": int(len(vertices)), "fit": fitted.summary,
                   "warnings": [defects] if defects else [],
                   "timings_s": {"refine": time.perf_counter() - started}}
        return protocol.make_reply(job.request_id, "result", result=summary), {"vertices": fitted.vertices}


def _hang_up(conn: socket.socket, drain_s: float = 0.0) -> None:
    """End a connection: stop sending, read and drop what the peer still sends for up to
    ``drain_s`` (so it sees our reply rather than a reset), then shut it down."""
    try:
        conn.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + drain_s
        scratch = bytearray(1 << 16)
        while drain_s and time.monotonic() < deadline:
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            if not conn.recv_into(scratch):
                break
    except OSError:
        pass
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says memory ran out: a MemoryError, or torch's (CUDA) OutOfMemoryError."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


def _free_device_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _release_memory() -> None:
    """After a job: collect its garbage and hand freed heap back to the system (glibc keeps
    it otherwise, and a long-running server's RSS creeps up job by job)."""
    gc.collect()
    if sys.platform == "linux":
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def read_reconstruct_params(params: dict) -> dict:
    """The keyword arguments of :func:`pipeline.reconstruct_strokes`, validated."""
    return {
        "backend": protocol.check_choice(params, "backend", protocol.BACKENDS, backends.DEFAULT_BACKEND),
        "roundness": protocol.check_float(params, "roundness", *protocol.ROUNDNESS_RANGE, backends.DEFAULT_ROUNDNESS),
        "detail": protocol.check_choice(params, "detail", protocol.DETAILS, "medium"),
        "refine": protocol.check_int(params, "refine", 0, protocol.MAX_FIT_ITERATIONS, 0),
    }


def read_fit_params(params: dict) -> dict:
    """The keyword arguments of :func:`pipeline.fit_strokes`, validated."""
    return {"iterations": protocol.check_int(params, "iterations", 1, protocol.MAX_FIT_ITERATIONS, 200)}


def serve(host: str, port: int, device: str, token_file: Path | None, limits: Limits = Limits(),
          weights: Path | None = None, log_file: Path | None = None, parent_pid: int | None = None) -> None:
    """Run a server until it is told to stop; the token lives in ``token_file`` meanwhile.
    ``weights`` is the learned backend's checkpoint (the shipped one when None); the log
    rotates in ``log_file`` (stderr when None); with ``parent_pid`` the server stops when
    that process is gone."""
    import signal

    # Refuse a shared token folder before listening; the default one is ours to make private.
    protocol.private_dir(Path(token_file).parent if token_file else protocol.runtime_dir(), tighten=not token_file)
    log = ServerLog(Path(log_file)) if log_file else ServerLog()
    server = ModelServer(host, port, "pending", device, limits, log=log, weights=weights)
    poisson_solver.use_helper_process()   # open3d's Poisson would hold the GIL: heartbeats and cancel must not wait
    path = Path(token_file) if token_file else protocol.token_path(server.port)
    server.token = protocol.write_token(path, tighten=not token_file)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    if parent_pid:
        server.watch_parent(parent_pid)
    print(f"Sketch2Mesh server ready on {server.host}:{server.port} (device {device}, token file {path})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    finally:
        if protocol.read_token(path) == server.token:
            path.unlink(missing_ok=True)
        log.close()

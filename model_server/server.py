"""The model server: a loopback socket that answers the add-on.

This is the service edge, with the command line: the only code that speaks the wire
protocol. The core raises :class:`model_server.errors.Refused`; here it becomes an error
reply with the same code and sentence.

One worker thread runs one job at a time on the device, fed by a queue. Every
connection has its own thread, so ``ping`` and ``cancel`` are answered while a job
runs. Nothing a client sends can stop the server: a malformed frame gets an error
reply and a closed connection, a failing job gets an error reply.
"""

from __future__ import annotations

import ipaddress
import os
import queue
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sketch2mesh_addon import protocol
from sketch2mesh_addon.protocol import ProtocolError

from model_server.errors import Refused
from model_server.reconstruct import pipeline

SERVER_VERSION = "0.1.0"

MAX_QUEUED_JOBS = 8
MAX_CONNECTIONS = 32
IDLE_TIMEOUT_S = 120.0


class Cancelled(Exception):
    """Raised inside a job's progress callback once the job has been cancelled."""


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

    def __init__(self, host: str, port: int, token: str, device: str = "cpu",
                 max_frame: int = protocol.DEFAULT_MAX_FRAME, log=sys.stderr, weights: Path | None = None):
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
        self._sock.listen(16)
        self.host, self.port = host, self._sock.getsockname()[1]
        self.token, self.device, self.max_frame, self.log = token, device, max_frame, log
        self.weights = weights
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=MAX_QUEUED_JOBS)
        self._active: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name="s2m-worker", daemon=True)

    # --- lifecycle -------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept connections until :meth:`stop` is called (or a client sends ``shutdown``)."""
        self._worker.start()
        self._sock.settimeout(0.5)
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            if not self._slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()
        self._sock.close()
        with self._lock:
            for job in self._active.values():
                job.cancel.set()
        try:
            self._jobs.put_nowait(None)
        except queue.Full:
            pass

    def stop(self) -> None:
        """Ask the accept loop to end; running jobs are cancelled."""
        self._stopping.set()

    def _say(self, text: str) -> None:
        print(f"[sketch2mesh-server] {text}", file=self.log, flush=True)

    # --- connections -----------------------------------------------------------------

    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(IDLE_TIMEOUT_S)
            while not self._stopping.is_set():
                try:
                    message = protocol.recv_message(conn, self.max_frame)
                except ProtocolError as exc:
                    self._send(conn, protocol.error_reply("", exc.code, exc.message))
                    return
                except (ConnectionError, socket.timeout, OSError):
                    return
                if not self._handle(conn, message):
                    return
        except Exception:
            self._say("connection handler failed:\n" + traceback.format_exc())
        finally:
            conn.close()
            self._slots.release()

    def _handle(self, conn: socket.socket, message: protocol.Message) -> bool:
        """Answer one request. Returns False when the connection should close."""
        request_id = message.header.get("id") if isinstance(message.header.get("id"), str) else ""
        try:
            request_id, op, token, params = protocol.check_request(message.header)
            if not protocol.tokens_match(token, self.token):
                raise ProtocolError("bad_token", "The server rejected the token; restart the server from the add-on or check the token file.")
            if op == "ping":
                return self._send(conn, protocol.make_reply(request_id, "result", result=self.status()))
            if op == "cancel":
                target = params.get("target")
                if not isinstance(target, str):
                    raise ProtocolError("bad_request", "cancel needs params.target, the id of the job to cancel")
                return self._send(conn, protocol.make_reply(request_id, "result", result={"cancelled": self.cancel(target)}))
            if op == "shutdown":
                self._send(conn, protocol.make_reply(request_id, "result", result={"stopping": True}))
                self.stop()
                return False
            if op == "fit":
                job = Job(request_id, op, read_sketch(message.arrays), read_fit_params(params),
                          protocol.unpack_mesh(message.arrays))
            else:
                job = Job(request_id, op, read_sketch(message.arrays), read_reconstruct_params(params))
            return self._run(conn, job)
        except ProtocolError as exc:
            return self._send(conn, protocol.error_reply(request_id, exc.code, exc.message)) and exc.code != "bad_token"

    def _run(self, conn: socket.socket, job: Job) -> bool:
        """Queue ``job`` and relay its replies until its result or error."""
        request_id = job.request_id
        with self._lock:
            if request_id in self._active:
                raise ProtocolError("bad_request", f"a job with id {request_id!r} is already running")
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                raise ProtocolError("busy", "The server is busy with other jobs; try again in a moment.") from None
            self._active[request_id] = job
        queued = self._jobs.qsize()
        if queued > 1:
            self._send(conn, protocol.make_reply(request_id, "progress", message=f"Queued behind {queued - 1} job(s)", fraction=0.0))
        while True:
            header, out_arrays = job.events.get()
            if not self._send(conn, header, out_arrays):
                job.cancel.set()
                return False
            if header["kind"] != "progress":
                return True

    @staticmethod
    def _send(conn: socket.socket, header: dict, arrays: dict | None = None) -> bool:
        try:
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
                "pid": os.getpid(), "jobs": active}

    def cancel(self, request_id: str) -> bool:
        """Cancel a queued or running job; True if there was one."""
        with self._lock:
            job = self._active.get(request_id)
        if job is None:
            return False
        job.cancel.set()
        return True

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._stopping.is_set():
                return
            try:
                job.events.put(self._run_job(job))
            finally:
                with self._lock:
                    self._active.pop(job.request_id, None)

    def _run_job(self, job: Job) -> tuple[dict, dict | None]:
        def progress(message: str, fraction: float, vertices=None) -> None:
            if job.cancel.is_set():
                raise Cancelled()
            arrays = None if vertices is None else {"vertices": np.asarray(vertices, np.float32)}
            job.events.put((protocol.make_reply(job.request_id, "progress", message=message, fraction=float(fraction)),
                            arrays))

        started = time.perf_counter()
        try:
            progress("Starting", 0.0)
            if job.op == "fit":
                reply = self._fit(job, progress)
            else:
                reply = self._reconstruct(job, progress)
        except Cancelled:
            return protocol.error_reply(job.request_id, "cancelled", "The job was cancelled."), None
        except (ProtocolError, Refused) as exc:
            return protocol.error_reply(job.request_id, exc.code, exc.message), None
        except Exception as exc:
            self._say(f"job {job.request_id} failed:\n" + traceback.format_exc())
            what = "Fit to strokes" if job.op == "fit" else "Reconstruction"
            return protocol.error_reply(job.request_id, "internal", f"{what} failed inside the server: {exc}"), None
        self._say(f"job {job.request_id} ({job.op}) done in {time.perf_counter() - started:.2f} s")
        return reply

    def _reconstruct(self, job: Job, progress) -> tuple[dict, dict]:
        result = pipeline.reconstruct_strokes(job.strokes, device=self.device, progress=progress, weights=self.weights,
                                              **job.params)
        summary = {"backend": result.backend, "device": result.device, "vertices": int(len(result.vertices)),
                   "faces": int(len(result.faces)), "timings_s": result.timings, "notes": result.notes,
                   "fusion": result.fusion}
        self._say(f"job {job.request_id}: surface from {result.fusion}")
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


def read_sketch(arrays: dict) -> dict:
    """The strokes of a reconstruct or fit request, validated."""
    strokes = protocol.unpack_strokes(arrays)
    protocol.check_strokes(strokes)
    return strokes


def read_reconstruct_params(params: dict) -> dict:
    """The keyword arguments of :func:`pipeline.reconstruct_strokes`, validated."""
    return {
        "backend": protocol.check_choice(params, "backend", protocol.BACKENDS, "learned"),
        "detail": protocol.check_choice(params, "detail", protocol.DETAILS, "medium"),
        "refine": protocol.check_int(params, "refine", 0, protocol.MAX_FIT_ITERATIONS, 0),
    }


def read_fit_params(params: dict) -> dict:
    """The keyword arguments of :func:`pipeline.fit_strokes`, validated."""
    return {"iterations": protocol.check_int(params, "iterations", 1, protocol.MAX_FIT_ITERATIONS, 200)}


def serve(host: str, port: int, device: str, token_file: Path | None,
          max_frame: int = protocol.DEFAULT_MAX_FRAME, weights: Path | None = None) -> None:
    """Run a server until it is told to stop; the token lives in ``token_file`` meanwhile.
    ``weights`` is the learned backend's checkpoint (the shipped one when None)."""
    import signal

    token = "pending"
    server = ModelServer(host, port, token, device, max_frame, weights=weights)
    path = Path(token_file) if token_file else protocol.token_path(server.port)
    server.token = protocol.write_token(path)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    print(f"Sketch2Mesh server ready on {server.host}:{server.port} (device {device}, token file {path})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    finally:
        if protocol.read_token(path) == server.token:
            path.unlink(missing_ok=True)

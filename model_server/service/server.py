"""The model server: a loopback socket that answers the add-on, and its start-up.

This is the service edge, with the command line: the only code that speaks the wire
protocol. The core raises :class:`model_server.errors.Refused`; here it becomes an error
reply with the same code and sentence.

Every connection has its own thread, so ``ping`` and ``cancel`` are answered while a job
runs; jobs go through the :mod:`.relay` to one worker at a time. Nothing a client sends
can stop the server or exhaust it (README, "Security"):

- a new connection must deliver its first frame's header within ``first_frame_s``, and
  the token is checked on that header before anything else is read (:mod:`.admission`);
- a payload is read only after the token, into one buffer, and the bytes being read
  across all connections are bounded (:mod:`.budget`);
- a full server answers ``busy`` with a sentence; a malformed frame gets an error reply;
  a failing job gets an error reply (:mod:`.replies`); repeated complaints are
  rate-limited in the log (:mod:`.log`).
"""

from __future__ import annotations

import ctypes
import errno
import gc
import os
import queue
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

from sketch2mesh_addon import protocol
from sketch2mesh_addon.protocol import ProtocolError

from model_server import interrupt
from model_server.device import use_cpu_threads
from model_server.reconstruct import poisson_solver
from model_server.service import replies
from model_server.service.admission import BAD_TOKEN, Admission, check_loopback, hang_up, token_matches
from model_server.service.budget import ByteBudget, room
from model_server.service.limits import Limits
from model_server.service.log import ServerLog
from model_server.service.refusals import Busy, Reply
from model_server.service.relay import Job, Relay

SERVER_VERSION = "0.1.0"
FAULT_ENV = "SKETCH2MESH_FAULT"   # a test hook: "cuda_oom" makes the next job run out of GPU memory


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
        self._stopping = threading.Event()
        self._door = Admission(limits)
        self._budget = ByteBudget(limits.max_bytes_in_flight)
        self._relay = Relay(limits, self._start_worker, say=self._say, stopping=self._stopping)
        self._fault = os.environ.get(FAULT_ENV, "")

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
        self._relay.close()     # every waiting client hears that its job ends

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
        """Take a new connection into the waiting pool and give it a thread."""
        self._door.admit(conn)
        try:
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()
        except RuntimeError:        # no thread to spare: this connection cannot be served now
            self._door.leave(conn, authenticated=False)
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
                if not token_matches(header, self.token):
                    del header
                    self._refuse(conn, request_id, ProtocolError("bad_token", BAD_TOKEN), drain=False)
                    return
                if not authenticated:
                    self._door.authenticate(conn, request_id)
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
            self._door.leave(conn, authenticated)
            conn.close()

    def _refuse(self, conn: socket.socket, request_id: str, exc: ProtocolError, drain: bool = True) -> None:
        """Answer a frame that cannot be served, then hang up: with ``drain``, politely (an
        authenticated peer may still be sending its payload and should see our answer)."""
        self._say(f"refused a frame: {exc.code}: {exc.message[:200]}", key=f"refused {exc.code}")
        if self._send(conn, protocol.error_reply(request_id, exc.code, exc.message[:1000])):
            hang_up(conn, drain_s=0.5 if drain else 0.0)

    def _handle(self, conn: socket.socket, header: dict, plen: int) -> bool:
        """Read the payload of an authenticated frame and answer it. False: close the connection
        (after any refusal: its payload may still be on the way)."""
        request_id = protocol.request_id_of(header)
        try:
            request_id, op, _, params = protocol.check_request(header)
            with room(self._budget, plen, self.limits.room_wait_s):
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
            return Job(request_id, op, strokes, replies.read_fit_params(params),
                       protocol.unpack_mesh(arrays, self.limits.max_fit_faces))
        return Job(request_id, op, strokes, replies.read_reconstruct_params(params))

    def _run(self, conn: socket.socket, job: Job) -> bool:
        """Queue ``job`` and relay its replies until its result or error (its watch says
        what to send, and when a silence needs a heartbeat)."""
        watch = self._relay.submit(job)
        while True:
            try:
                event = job.events.get(timeout=watch.timeout())
            except queue.Empty:
                event = None
            step = watch.step(event)
            if step.reply is None:
                continue
            if not self._send(conn, *step.reply):
                watch.lost()
                return False
            if step.final:
                return True

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
        return {"server": SERVER_VERSION, "protocol": protocol.PROTOCOL_VERSION, "device": self.device,
                "pid": os.getpid(), "jobs": self._relay.active(), "heartbeat_s": self.limits.heartbeat_s}

    def cancel(self, request_id: str) -> bool:
        """Cancel a queued or running job; True if there was one. Its connection answers
        within ``relay.CANCEL_ANSWER_S``: with the job's own last word if it comes by then
        (a fit's best shape so far), else with ``cancelled`` while the job is abandoned."""
        return self._relay.cancel(request_id)

    def _start_worker(self) -> None:
        threading.Thread(target=self._work, name="s2m-worker", daemon=True).start()

    def _work(self) -> None:
        """Run jobs until the server stops, or until this worker's job was abandoned."""
        while (job := self._relay.take()) is not None:
            try:
                reply = self._run_job(job)
            except BaseException as exc:       # never leave a client without an answer
                reply = protocol.error_reply(job.request_id, "internal", f"The job stopped: {exc!r}"), None
            abandoned = self._relay.finish(job, reply)
            del reply, job
            _release_memory()
            if abandoned:
                return     # a fresh worker took over while this one finished the cancelled job

    def _run_job(self, job: Job) -> Reply:
        """Run the job on this thread: its progress goes to its connection, a cancel stops it
        at the core's next checkpoint (``interrupt``), and its outcome becomes a reply."""
        def progress(message: str, fraction: float, vertices=None) -> None:
            self._relay.hear(job)
            interrupt.checkpoint()
            self._inject_fault(message)
            job.events.put(replies.progress(job.request_id, message, fraction, vertices))

        started = time.perf_counter()
        try:
            with interrupt.cancellable(job.cancel):
                progress("Starting", 0.0)
                if job.op == "fit":
                    reply = replies.fit(job.request_id, job.mesh, job.strokes, job.params, self.device, progress)
                else:
                    reply = replies.reconstruct(job.request_id, job.strokes, job.params, self.device, self.weights,
                                                progress, self._say)
        except Exception as exc:
            return replies.failure(job.request_id, exc, "Fit to strokes" if job.op == "fit" else "Reconstruction",
                                   self.device, self._say)
        self._say(f"job {job.request_id} ({job.op}) done in {time.perf_counter() - started:.2f} s", key="job done")
        return reply

    def _inject_fault(self, message: str) -> None:
        """The test hook of ``FAULT_ENV``: once, in the job's first stage, raise what a full GPU raises."""
        if self._fault == "cuda_oom" and message != "Starting":
            self._fault = ""
            import torch

            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated by {FAULT_ENV})")


def _release_memory() -> None:
    """After a job: collect its garbage and hand freed heap back to the system (glibc keeps
    it otherwise, and a long-running server's RSS creeps up job by job)."""
    gc.collect()
    if sys.platform == "linux":
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


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
    use_cpu_threads(device)               # once, here, for every worker: never per job (an abandoned one may still run)
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

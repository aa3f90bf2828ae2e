"""Work that talks to the server, run off Blender's main thread.

A :class:`Job` runs a function in a worker thread and keeps its latest progress,
result or error where the main thread can read them (a modal operator polls it on
a timer). One job runs at a time. The work functions here use no bpy: they take a
:class:`server_process.Settings` copied from the preferences on the main thread.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import client, protocol, server_process, server_setup

Progress = Callable[[str, float], None]
Work = Callable[[Progress, threading.Event], Any]


class Job:
    """One piece of work in a worker thread, with its progress and outcome."""

    def __init__(self, title: str, work: Work):
        self.title = title
        self.work = work
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.message = "Starting"
        self.fraction = 0.0
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"sketch2mesh: {title}", daemon=True)

    def start(self) -> Job:
        self._thread.start()
        return self

    def _progress(self, message: str, fraction: float) -> None:
        self.message, self.fraction = message, fraction

    def _run(self) -> None:
        try:
            self.result = self.work(self._progress, self.cancel)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set() or isinstance(self.error, client.Cancelled)

    def status_line(self) -> str:
        return f"{self.title}: {self.message} ({self.fraction:.0%})"


_current: Job | None = None


def current() -> Job | None:
    """The job running now, or None."""
    return _current if _current is not None and not _current.done.is_set() else None


def submit(title: str, work: Work) -> Job:
    """Start ``work`` in a worker thread; refuses while another job runs."""
    global _current
    if current() is not None:
        raise RuntimeError(f"Sketch2Mesh is busy ({_current.title}); wait for it or cancel it first.")
    _current = Job(title, work).start()
    return _current


def cancel_current() -> bool:
    """Ask the running job to stop; True if there was one."""
    job = current()
    if job is None:
        return False
    job.cancel.set()
    return True


def user_message(exc: BaseException) -> str:
    """One sentence for ``self.report`` from anything a job raised."""
    if isinstance(exc, client.ServerError):
        return exc.message
    if isinstance(exc, server_process.ServerStartError):
        return str(exc)
    if isinstance(exc, server_setup.SetupError):
        return exc.report()
    if isinstance(exc, OSError):
        return f"Sketch2Mesh could not start or reach the server: {exc.strerror or exc}"
    return f"Sketch2Mesh failed: {exc}"


def reconstruct_work(settings: server_process.Settings, sketch: dict[str, list[np.ndarray]],
                     backend: str, detail: str, refine: int, roundness: float = protocol.DEFAULT_ROUNDNESS) -> Work:
    """Work that makes sure a server runs, then reconstructs ``sketch`` on it."""

    def work(progress: Progress, cancel: threading.Event) -> client.ReconstructResult:
        progress("Connecting to the server", 0.0)
        server = server_process.ensure_server(settings, cancel)
        return client.reconstruct(server.host, server.port, server.token, sketch, backend=backend,
                                  detail=detail, refine=refine, roundness=roundness, on_progress=progress, cancel=cancel,
                                  idle_timeout=client.silence_timeout(server.status))

    return work


class Latest:
    """The newest value a worker thread produced, for the main thread to take once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._value = None

    def put(self, value: Any) -> None:
        with self._lock:
            self._value = value

    def take(self) -> Any:
        with self._lock:
            value, self._value = self._value, None
        return value


def fit_work(settings: server_process.Settings, sketch: dict[str, list[np.ndarray]], vertices: np.ndarray,
             faces: np.ndarray, iterations: int, preview: Latest | None = None) -> Work:
    """Work that makes sure a server runs, then fits the world-space mesh to ``sketch``;
    the vertices streamed during the fit land in ``preview``."""
    def work(progress: Progress, cancel: threading.Event) -> client.FitResult:
        progress("Connecting to the server", 0.0)
        server = server_process.ensure_server(settings, cancel)
        return client.fit(server.host, server.port, server.token, vertices, faces, sketch, iterations=iterations,
                          on_progress=progress, on_vertices=None if preview is None else preview.put, cancel=cancel,
                          idle_timeout=client.silence_timeout(server.status))
    return work


def start_server_work(settings: server_process.Settings) -> Work:
    """Work that starts the managed server, unless one already answers, and waits until it is ready."""

    def work(progress: Progress, cancel: threading.Event) -> server_process.Connection:
        progress("Starting the server", 0.0)
        return server_process.ensure_server(replace(settings, auto_start=True), cancel)

    return work


def setup_work(plan: server_setup.Plan) -> Work:
    """Work that makes or repairs the server environment; a server this add-on started from
    that environment is stopped first, since the set-up replaces its packages and code."""

    def work(progress: Progress, cancel: threading.Event) -> server_setup.Ready:
        running = server_process.managed()
        if running is not None and plan.env_dir in Path(running.settings.server_python).parents:
            server_process.stop()
        return server_setup.setup(plan, progress, cancel)

    return work

"""Find, start and stop the model server the add-on talks to.

A server already answering at host:port is used: one this add-on started (its token
sits in the extension's user folder) or one started by hand (token at
``protocol.token_path(port)``). Otherwise the add-on starts one from the
``server_python`` preference, waits until it answers ``ping``, and stops it on
unregister and at exit; if it dies, the next request starts a new one. Nothing here
imports bpy, so the same code runs in worker threads.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import client, protocol

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 12
# Child processes open no console window on Windows (0 elsewhere); the set-up's pip runs use it too.
NO_WINDOW = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0


@dataclass(frozen=True)
class Settings:
    """What the add-on preferences say about the server, copied off the main thread."""

    server_python: str = ""
    host: str = protocol.DEFAULT_HOST
    port: int = protocol.DEFAULT_PORT
    auto_start: bool = True
    device: str = "auto"
    state_dir: Path | None = None  # where a managed server keeps its token and log

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def same_server(self, other: Settings) -> bool:
        """Whether a server started with ``other`` is the one these settings ask for."""
        return replace(self, auto_start=True) == replace(other, auto_start=True)


@dataclass(frozen=True)
class Connection:
    """A server that answered ``ping``."""

    host: str
    port: int
    token: str
    status: dict


class ServerStartError(Exception):
    """The server could not be started or did not become ready."""


class ManagedServer:
    """A server process this add-on started, with its token file, its log (which the server
    rotates) and its console output (where a failed start says why)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        state_dir = settings.state_dir or protocol.runtime_dir()
        self.token_file = protocol.token_path(settings.port, state_dir)
        self.log_file = Path(state_dir) / f"server-{settings.port}.log"
        self.console_file = Path(state_dir) / f"server-{settings.port}.out"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        """The server's command line; it stops by itself if this process (Blender) goes away."""
        s = self.settings
        return [s.server_python, "-m", "model_server", "serve", "--host", s.host, "--port", str(s.port),
                "--device", s.device, "--token-file", str(self.token_file), "--log-file", str(self.log_file),
                "--parent-pid", str(os.getpid())]

    def start(self) -> None:
        python = Path(self.settings.server_python)
        if not self.settings.server_python:
            raise ServerStartError("The Sketch2Mesh server is not set up: click Set up in the sidebar's Server box "
                                   "(about 1 GB to download), or set Server Python in the add-on's preferences "
                                   "to an environment of your own.")
        if not python.is_file():
            raise ServerStartError(f"The Server Python preference points to {python}, which does not exist; "
                                   "set it to the Python of the Sketch2Mesh server environment.")
        try:
            protocol.private_dir(self.token_file.parent, tighten=True)
        except protocol.TokenFileError as exc:
            raise ServerStartError(str(exc)) from None
        self.token_file.unlink(missing_ok=True)   # a killed server's stale token
        with open(self.console_file, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, creationflags=NO_WINDOW,
                                            cwd=str(self.token_file.parent))

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def token(self) -> str:
        return protocol.read_token(self.token_file)

    def log_tail(self) -> str:
        """The end of the server's console output: why it failed to start, if it did."""
        try:
            lines = self.console_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, cancel: threading.Event | None = None) -> Connection:
        """Poll until the server answers ``ping``; raise with the log's tail if it dies."""
        s = self.settings
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                raise client.Cancelled("cancelled", "Cancelled.")
            if self.process is None:
                raise ServerStartError("The Sketch2Mesh server was stopped while it was starting.")
            if not self.alive():
                code = self.process.returncode
                tail = self.log_tail()
                raise ServerStartError(f"The Sketch2Mesh server exited (code {code}) while starting"
                                       + (f": {_last_line(tail)}" if tail else "")
                                       + f". Full output: {self.console_file}")
            token = self.token()
            if token:
                try:
                    return Connection(s.host, s.port, token, client.ping(s.host, s.port, token))
                except client.ServerError:
                    pass
            time.sleep(0.2)
        self.stop()
        raise ServerStartError(f"The Sketch2Mesh server did not become ready within {timeout:.0f} s; "
                               f"see its log at {self.log_file}.")

    def stop(self) -> None:
        """Ask the server to shut down, then terminate it if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        token = self.token()
        if token:
            try:
                client.shutdown(self.settings.host, self.settings.port, token)
            except client.ServerError:
                pass
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


_lock = threading.RLock()
_managed: ManagedServer | None = None


def managed() -> ManagedServer | None:
    """The server this add-on started, if any (running or not)."""
    return _managed


def find_running(settings: Settings) -> Connection | None:
    """The server answering at host:port, or None if nothing listens there.

    It tries the token of the server this add-on starts (which may survive from an
    earlier Blender session), then the one a server started by hand writes to
    ``protocol.token_path(port)``. If something listens but takes neither token,
    the bad-token error is raised."""
    token_files = dict.fromkeys([ManagedServer(settings).token_file, protocol.token_path(settings.port)])
    rejected: client.ServerError | None = None
    for token_file in token_files:
        token = protocol.read_token(token_file)
        try:
            return Connection(settings.host, settings.port, token, client.ping(settings.host, settings.port, token))
        except client.ServerUnreachable:
            return None
        except client.ServerError as exc:
            if exc.code != "bad_token":
                raise
            rejected = exc
    raise rejected


def ensure_server(settings: Settings, cancel: threading.Event | None = None) -> Connection:
    """A live server for ``settings``: one already answering at host:port, else a new managed one
    (if ``auto_start``). A managed server started with other settings is stopped first.

    Raises :class:`client.ServerError` (unreachable, bad token) or :class:`ServerStartError`."""
    global _managed
    with _lock:
        if _managed is not None and not _managed.settings.same_server(settings):
            _managed.stop()
            _managed = None
        running = find_running(settings)
        if running is not None:
            return running
        if not settings.auto_start:
            raise client.ServerUnreachable("unreachable", client.unreachable_message(settings.host, settings.port))
        return start(settings, cancel)


def start(settings: Settings, cancel: threading.Event | None = None) -> Connection:
    """Start a managed server (stopping a previous one) and wait until it is ready."""
    global _managed
    with _lock:
        if _managed is not None:
            _managed.stop()
        if cancel is not None and cancel.is_set():
            raise client.Cancelled("cancelled", "Cancelled.")
        server = _managed = ManagedServer(settings)
        server.start()
        if _managed is not server:      # stop() ran meanwhile (the add-on is going away)
            server.stop()
            raise ServerStartError("The Sketch2Mesh server was stopped while it was starting.")
        return server.wait_ready(cancel=cancel)


def stop() -> bool:
    """Stop the managed server; True if one was running. Does not wait for a start in progress."""
    global _managed
    server, _managed = _managed, None
    if server is None or not server.alive():
        return False
    server.stop()
    return True


def describe(settings: Settings) -> str:
    """One line about the managed server, for the panel; never touches the network."""
    server = _managed
    if server is not None and server.alive():
        return f"Running at {settings.address} (pid {server.process.pid})"
    if server is not None and server.process is not None and server.process.returncode is not None:
        return f"Stopped (exit code {server.process.returncode})"
    return f"Not started here; uses {settings.address} if running"


atexit.register(stop)

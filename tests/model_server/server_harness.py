"""A real ``python -m model_server serve`` process for the server tests, and the requests they send.

Imported by the server test modules (``conftest`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from sketch2mesh_addon import protocol

REPO = Path(__file__).resolve().parents[2]


class Server:
    """A server process on a free port, with its token; its log goes to ``log_file``."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None):
        self.token_file = tmp / "server.token"
        self.log_file = tmp / "server.log"
        self._log = open(self.log_file, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "model_server", "serve", "--port", "0", "--device", "cpu",
             "--token-file", str(self.token_file), *args],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self._log, text=True, env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()
        assert "ready on" in line, line + self.log_file.read_text()
        self.port = int(line.split("ready on ")[1].split()[0].rsplit(":", 1)[1])
        self.token = protocol.read_token(self.token_file)

    def connect(self, timeout: float = 60) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def call(self, op: str, params: dict | None = None, arrays: dict | None = None, token: str | None = None,
             request_id: str | None = None, timeout: float = 120) -> tuple[list[dict], protocol.Message]:
        """Send one request; return the progress headers and the final message."""
        with self.connect(timeout) as sock:
            header = protocol.make_request(op, self.token if token is None else token, request_id or uuid.uuid4().hex, params)
            protocol.send_message(sock, header, arrays)
            progress = []
            while True:
                msg = protocol.recv_message(sock)
                if msg.header["kind"] != "progress":
                    return progress, msg
                progress.append(msg.header)

    def send_raw(self, data: bytes, timeout: float = 10) -> protocol.Message | None:
        """Send raw bytes, close the sending side, and return the reply (None if the server hung up)."""
        with self.connect(timeout) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            try:
                return protocol.recv_message(sock)
            except (ConnectionError, OSError):
                return None

    def warm_up(self) -> float:
        """Load what jobs load once (torch, the network): a learned reconstruct and a small fit.
        Returns the RSS after it (MB): the baseline for growth."""
        self.call("reconstruct", {"detail": "low"}, sketch_arrays())
        self.call("fit", {"iterations": 2}, sketch_arrays() | protocol.pack_mesh(*ellipsoid_mesh(subdivisions=1)))
        return self.rss_mb()

    def alive(self) -> bool:
        return self.proc.poll() is None and self.call("ping", timeout=30)[1].header["kind"] == "result"

    def rss_mb(self) -> float:
        """The server process's resident memory, in MB (Linux)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def wait_for_job(self, request_id: str, timeout: float = 60) -> None:
        """Wait until ``request_id`` is queued or running."""
        deadline = time.monotonic() + timeout
        while request_id not in self.call("ping")[1].header["result"]["jobs"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {request_id} never showed up in ping")
            time.sleep(0.01)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._log.close()


def ring(cx: float, cy: float, rx: float, ry: float, n: int = 120) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def sketch_arrays(front=None, side=None) -> dict:
    """An ellipsoid-like sketch in world units, off the origin, as the add-on sends it."""
    front = [ring(2.0, 1.0, 0.6, 0.9)] if front is None else front
    side = [ring(-1.0, 1.0, 0.4, 0.9)] if side is None else side
    return protocol.pack_strokes("front", front) | protocol.pack_strokes("side", side)


def ellipsoid_mesh(scale: float = 0.8, subdivisions: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The sketch_arrays ellipsoid (semi-axes 0.6, 0.4, 0.9 around (2, -1, 1)), shrunk by ``scale``."""
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh.create_icosahedron(1.0).subdivide_loop(subdivisions)
    unit = np.asarray(mesh.vertices)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    vertices = unit * np.array([0.6, 0.4, 0.9]) * scale + np.array([2.0, -1.0, 1.0])
    return vertices.astype(np.float32), np.asarray(mesh.triangles, np.int32)


def raw_frame(header: dict | bytes, payload: bytes = b"") -> bytes:
    """A frame with any header (a dict, or raw bytes) and payload, bypassing :func:`protocol.encode`'s checks."""
    head = header if isinstance(header, bytes) else __import__("json").dumps(header).encode("utf-8", "surrogatepass")
    return protocol.PREFIX.pack(protocol.MAGIC, len(head), len(payload)) + head + payload

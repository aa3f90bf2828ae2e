"""Screened Poisson on oriented points, in this process or in a helper process.

open3d's Poisson holds Python's GIL for seconds at high detail. In the server that would
silence every other thread for that long: heartbeats, ``ping`` and ``cancel``. After
:func:`use_helper_process` (the server calls it at start), a solve runs in a child
process instead: the calling thread waits on a pipe without the GIL and checks for
cancellation (:mod:`model_server.interrupt`) every ``POLL_S``; a cancel kills the child,
and a fresh one is started for the next solve. The call and its inputs are the same
either way, and so is the surface.
"""

from __future__ import annotations

import importlib
import multiprocessing
import threading

import numpy as np

from model_server import interrupt

POLL_S = 0.1
SCALE = 1.1

Surface = tuple[np.ndarray, np.ndarray, np.ndarray]   # vertices (V, 3), triangles (F, 3), density (V,)


def solve_here(points: np.ndarray, normals: np.ndarray, depth: int, scale: float = SCALE) -> Surface:
    """Poisson surface of oriented ``points`` and each vertex's sample density, in this process."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    cloud.normals = o3d.utility.Vector3dVector(np.asarray(normals, np.float64))
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=depth, scale=scale)
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles), np.asarray(density)


def _serve(conn) -> None:
    """The helper process: say it is ready (open3d imported), then solve every request that
    arrives until the pipe closes; a failure is sent back, not fatal."""
    importlib.import_module("open3d")     # the slow import, done before the first request
    conn.send("ready")
    while True:
        try:
            points, normals, depth, scale = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("surface", solve_here(points, normals, depth, scale)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class Helper:
    """One child process that solves Poisson problems sent over a pipe, one at a time."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), name="s2m-poisson", daemon=True)
        self._process.start()
        child.close()
        self._ready = False

    def solve(self, points: np.ndarray, normals: np.ndarray, depth: int, scale: float) -> Surface:
        """The surface; raises :class:`interrupt.Interrupted` (and kills the child) on cancel."""
        if not self._ready:
            self._ready = self._answer() == "ready"
        self._conn.send((points, normals, depth, scale))
        kind, answer = self._answer()
        if kind == "error":
            raise RuntimeError(f"Poisson failed in its helper process: {answer}")
        return answer

    def _answer(self):
        """The child's next message, waited for without the GIL while watching for a cancel."""
        while not self._conn.poll(POLL_S):
            if interrupt.requested() or not self._process.is_alive():
                self.close()
                interrupt.checkpoint()
                raise RuntimeError("the Poisson helper process died")
        try:
            return self._conn.recv()
        except EOFError:
            self.close()
            raise RuntimeError("the Poisson helper process died") from None

    def close(self) -> None:
        """Stop the child (at once: it may be in the middle of a solve)."""
        self._process.kill()
        self._process.join()
        self._conn.close()


_lock = threading.Lock()
_helper: Helper | None = None
_use_helper = False


def use_helper_process() -> None:
    """Solve in a helper process from now on; it starts now, so the first job does not wait."""
    global _use_helper, _helper
    with _lock:
        _use_helper = True
        if _helper is None:
            _helper = Helper()


def solve(points: np.ndarray, normals: np.ndarray, depth: int, scale: float = SCALE) -> Surface:
    """Poisson surface of oriented ``points`` (see the module's docstring for where it runs)."""
    global _helper
    if not _use_helper:
        return solve_here(points, normals, depth, scale)
    with _lock:
        helper, _helper = (_helper or Helper()), None
        try:
            surface = helper.solve(np.ascontiguousarray(points), np.ascontiguousarray(normals), depth, scale)
        except BaseException:
            helper.close()
            _helper = Helper()      # the old one was killed, or died: have the next one ready
            raise
        _helper = helper
        return surface

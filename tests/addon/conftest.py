"""Fixtures for the add-on tests, which run inside a bpy wheel environment.

The model server they talk to is a real process, started from the server
environment's Python: ``SKETCH2MESH_SERVER_PYTHON`` (default: the repository's
``.venv``). Token files go to a temporary runtime folder, so the tests never touch
a server the user runs.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

if importlib.util.find_spec("bpy") is None:
    collect_ignore_glob = ["test_*.py"]  # these tests need Blender's Python module
else:
    import bpy  # first: it puts Blender's script modules (addon_utils) on sys.path
    import addon_utils

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))

    from sketch2mesh_addon import client, protocol, strokes

ADDON = "sketch2mesh_addon"
VENV_PYTHON = REPO / ".venv" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
SERVER_PYTHON = os.environ.get("SKETCH2MESH_SERVER_PYTHON") or str(VENV_PYTHON)
SERVER_READY_S = 180.0

# Server processes must find model_server even without an editable install, and keep
# their token files away from the user's.
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
os.environ["SKETCH2MESH_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="s2m-runtime-")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefs():
    return bpy.context.preferences.addons[ADDON].preferences


def outline(points: list[tuple[float, float]], n: int = 24) -> np.ndarray:
    """A closed polyline through ``points``, resampled to about ``n`` points per edge."""
    pts = np.asarray(points + points[:1], np.float64)
    segments = [np.linspace(a, b, n, endpoint=False) for a, b in zip(pts[:-1], pts[1:])]
    return np.concatenate(segments + [pts[-1:]]).astype(np.float32)


def circle(cx: float, cy: float, r: float, n: int = 96) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1).astype(np.float32)


def box_sketch() -> dict[str, list[np.ndarray]]:
    """A box-like object: a rectangle from the front, a rounded outline from the side."""
    return {
        "front": [outline([(-0.6, -0.4), (0.6, -0.4), (0.6, 0.4), (-0.6, 0.4)])],
        "side": [circle(0.0, 0.0, 0.4)],
    }


def _draw_sketch(sketch: dict | None = None):
    """A new sketch (via the operator) with ``sketch`` drawn in it; returns the object."""
    bpy.ops.sketch2mesh.new_sketch()
    obj = bpy.context.view_layer.objects.active
    strokes.write_sketch(obj, box_sketch() if sketch is None else sketch)
    return obj


def _scene_state() -> tuple:
    """What a failed operator must leave unchanged: objects, meshes, and every stroke."""
    sketches = {o.name: strokes.read_sketch(o) for o in bpy.data.objects if strokes.is_sketch(o)}
    flat = {name: {v: [s.tobytes() for s in ss] for v, ss in sk.items()} for name, sk in sketches.items()}
    return sorted(o.name for o in bpy.data.objects), len(bpy.data.meshes), flat


@pytest.fixture(scope="session")
def addon():
    """The add-on enabled the way Blender does it, so its preferences exist."""
    errors: list[BaseException] = []
    module = addon_utils.enable(ADDON, default_set=True, handle_error=errors.append)
    assert module is not None, errors
    yield module
    addon_utils.disable(ADDON, default_set=True)


def start_server(log: Path) -> tuple[subprocess.Popen, int]:
    """A server started by hand on a free port, its token where the add-on looks for it;
    returns once it answers ping."""
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen([SERVER_PYTHON, "-m", "model_server", "serve", "--port", str(port),
                                    "--device", "cpu"], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + SERVER_READY_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"the test server exited with code {process.returncode}:\n{log.read_text()}")
        token = protocol.read_token(protocol.token_path(port))
        if token:
            try:
                client.ping("127.0.0.1", port, token)
                return process, port
            except client.ServerError:
                pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the test server did not answer within {SERVER_READY_S} s:\n{log.read_text()}")
        time.sleep(0.2)


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A server shared by the session's tests, on a free port."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    process, port = start_server(log)
    yield {"port": port, "process": process, "log": log}
    stop_server(process)


@pytest.fixture
def own_server(tmp_path):
    """A server of the test's own, for a test that kills it."""
    log = tmp_path / "server.log"
    process, port = start_server(log)
    yield {"port": port, "process": process, "log": log}
    stop_server(process)


@pytest.fixture
def scene(addon):
    """An empty file; preferences pointing at nothing (tests that need a server set the port)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    p = prefs()
    p.server_python, p.host, p.port, p.auto_start, p.device = SERVER_PYTHON, "127.0.0.1", free_port(), False, "CPU"
    yield bpy.context.scene


@pytest.fixture
def served_scene(scene, server):
    """An empty file, with the add-on pointed at the hand-started test server."""
    prefs().port = server["port"]
    yield scene


@pytest.fixture
def draw_sketch(scene):
    """Call it to add a sketch (default: :func:`box_sketch`) with the new_sketch operator."""
    return _draw_sketch


@pytest.fixture
def scene_state():
    """Call it for a snapshot of what a failed operator must leave unchanged."""
    return _scene_state


@pytest.fixture
def box():
    """The sketch of :func:`box_sketch`: view -> strokes."""
    return box_sketch()


@pytest.fixture
def unused_port():
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture
def server_python():
    """The server environment's Python."""
    return SERVER_PYTHON


@pytest.fixture
def undo_window():
    """A context manager that gives undo the window it needs; the wheel has one, though it
    runs in background mode."""
    def window_context():
        window = bpy.context.window_manager.windows[0]
        return bpy.context.temp_override(window=window, screen=window.screen, area=window.screen.areas[0])
    return window_context

"""The server lifecycle the add-on manages: start, ready, stop, restart after death."""

from __future__ import annotations

import stat
import sys
import threading
import time

import addon_utils
import bpy
import pytest

from sketch2mesh_addon import client, server_process

ADDON = "sketch2mesh_addon"


def _prefs():
    return bpy.context.preferences.addons[ADDON].preferences


@pytest.fixture
def managed_scene(scene):
    """Preferences that let the add-on start its own server on a free port."""
    _prefs().auto_start = True
    yield scene
    server_process.stop()


def _managed_process():
    server = server_process.managed()
    assert server is not None and server.alive()
    return server.process


@pytest.mark.slow
def test_start_waits_until_ready_and_stop_ends_the_process(managed_scene):
    assert bpy.ops.sketch2mesh.server_start() == {"FINISHED"}
    server = server_process.managed()
    process = _managed_process()
    assert server.command()[1:4] == ["-m", "model_server", "serve"]
    if sys.platform != "win32":
        assert stat.S_IMODE(server.token_file.stat().st_mode) == 0o600
    assert client.ping("127.0.0.1", _prefs().port, server.token())["pid"] == process.pid
    assert "Running" in server_process.describe(server_process.Settings(port=_prefs().port))
    assert bpy.ops.sketch2mesh.server_stop() == {"FINISHED"}
    assert process.poll() is not None
    with pytest.raises(client.ServerUnreachable):
        client.ping("127.0.0.1", _prefs().port, "")


@pytest.mark.slow
def test_a_dead_server_is_restarted_by_the_next_click(managed_scene, draw_sketch):
    draw_sketch()
    bpy.ops.sketch2mesh.server_start()
    first = _managed_process()
    first.kill()
    first.wait()
    assert bpy.ops.sketch2mesh.reconstruct(backend="HULL", detail="LOW") == {"FINISHED"}
    second = _managed_process()
    assert second.pid != first.pid
    assert bpy.context.view_layer.objects.active.type == "MESH"


@pytest.mark.slow
def test_a_server_that_dies_mid_job_is_a_sentence_and_the_next_click_works(managed_scene, draw_sketch, scene_state):
    draw_sketch()
    bpy.ops.sketch2mesh.server_start()
    process = _managed_process()
    before = scene_state()

    def kill_when_busy():
        server = server_process.managed()
        for _ in range(3000):
            if client.ping("127.0.0.1", _prefs().port, server.token())["jobs"]:
                process.kill()
                return
            time.sleep(0.002)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    with pytest.raises(RuntimeError) as error:
        bpy.ops.sketch2mesh.reconstruct(backend="HULL", detail="HIGH")
    killer.join()
    assert process.wait(10) is not None
    message = str(error.value).strip().splitlines()
    assert len(message) == 1 and "closed the connection" in message[0], message
    assert scene_state() == before
    assert bpy.ops.sketch2mesh.reconstruct(backend="HULL", detail="LOW") == {"FINISHED"}
    assert _managed_process().pid != process.pid


@pytest.mark.slow
def test_unregister_stops_the_server_it_started(managed_scene):
    bpy.ops.sketch2mesh.server_start()
    process = _managed_process()
    addon_utils.disable(ADDON, default_set=True)
    try:
        assert process.poll() is not None
    finally:
        assert addon_utils.enable(ADDON, default_set=True) is not None


def test_missing_server_python_is_a_clear_error(managed_scene, draw_sketch, scene_state, tmp_path):
    _prefs().server_python = str(tmp_path / "no-such-python")
    draw_sketch()
    before = scene_state()
    with pytest.raises(RuntimeError, match="Server Python preference points to .*no-such-python, which does not exist"):
        bpy.ops.sketch2mesh.reconstruct()
    assert scene_state() == before


def test_empty_server_python_asks_to_set_the_preference(managed_scene, monkeypatch):
    monkeypatch.delenv("SKETCH2MESH_SERVER_PYTHON", raising=False)
    _prefs().server_python = ""
    with pytest.raises(RuntimeError, match="The Sketch2Mesh server is not set up: click Set up"):
        bpy.ops.sketch2mesh.server_start()


def test_a_server_that_dies_while_starting_shows_its_last_words(managed_scene):
    # Blender's own Python has no torch or open3d: the server cannot start there.
    _prefs().server_python, _prefs().device = sys.executable, "AUTO"
    with pytest.raises(RuntimeError, match=r"exited \(code \d+\) while starting: .*Error.* Full output: "):
        bpy.ops.sketch2mesh.server_start()

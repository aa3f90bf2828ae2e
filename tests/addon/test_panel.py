"""The sidebar's panels: what they draw for the scene, the active object and a running job.

Background mode draws no UI, so each panel's draw() runs on a layout that records what
it is asked to draw.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import bpy
import pytest

from sketch2mesh_addon import jobs, mesh_import, panel, protocol, strokes

WAIT_S = 60


class Layout:
    """Records a panel's drawing as ('label', text), ('prop', name), ('operator', idname,
    its properties) and ('progress', text, factor); rows and boxes draw into the same list.
    A prop drawn where ``active`` is false (greyed out) also records ('inactive', name)."""

    def __init__(self, drawn: list[tuple] | None = None):
        self.drawn: list[tuple] = [] if drawn is None else drawn
        self.active = True

    def label(self, text: str = "", icon: str = "NONE") -> None:
        self.drawn.append(("label", text))

    def prop(self, data, name: str, **options) -> None:
        self.drawn.append(("prop", name))
        if not self.active:
            self.drawn.append(("inactive", name))

    def operator(self, idname: str, text: str = "", icon: str = "NONE") -> SimpleNamespace:
        properties = SimpleNamespace()
        self.drawn.append(("operator", idname, properties))
        return properties

    def progress(self, factor: float = 0.0, type: str = "BAR", text: str = "") -> None:
        self.drawn.append(("progress", text, factor))

    def row(self, align: bool = False) -> Layout:
        return Layout(self.drawn)

    def box(self) -> Layout:
        return Layout(self.drawn)


def draw(panel_class: type) -> list[tuple]:
    layout = Layout()
    panel_class.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout.drawn


def operators_drawn(drawn: list[tuple]) -> dict[str, SimpleNamespace]:
    return {item[1]: item[2] for item in drawn if item[0] == "operator"}


def labels(drawn: list[tuple]) -> list[str]:
    return [item[1] for item in drawn if item[0] == "label"]


@pytest.fixture
def running_job():
    """A job holding at 'Fusing' (40%) until the test ends or releases it."""
    reached, release = threading.Event(), threading.Event()

    def work(progress, cancel):
        progress("Fusing", 0.4)
        reached.set()
        release.wait(WAIT_S)

    job = jobs.submit("Reconstruct", work)
    assert reached.wait(WAIT_S)
    yield job, release
    release.set()
    assert job.done.wait(WAIT_S)


def test_reconstruct_button_carries_the_scenes_backend_and_detail(scene):
    bpy.context.scene.sketch2mesh.backend, bpy.context.scene.sketch2mesh.detail = "LEARNED", "HIGH"
    button = operators_drawn(draw(panel.SKETCH2MESH_PT_reconstruct))["sketch2mesh.reconstruct"]
    assert (button.backend, button.detail) == ("LEARNED", "HIGH")


def test_reconstruct_shows_the_roundness_slider_and_its_button_carries_it(scene):
    settings = bpy.context.scene.sketch2mesh
    assert settings.backend.lower() == protocol.DEFAULT_BACKEND
    assert settings.roundness == protocol.DEFAULT_ROUNDNESS
    assert settings.bl_rna.properties["roundness"].subtype == "FACTOR"
    for backend in ("ROUND", "HULL", "LEARNED"):
        settings.backend, settings.roundness = backend, 0.25
        drawn = draw(panel.SKETCH2MESH_PT_reconstruct)
        assert ("prop", "roundness") in drawn             # shown for every backend, live for round only
        assert (("inactive", "roundness") in drawn) == (backend != "ROUND")
        button = operators_drawn(drawn)["sketch2mesh.reconstruct"]
        assert (button.backend, button.roundness) == (backend, 0.25)


def test_panel_greys_out_target_faces_unless_quads_and_its_button_carries_both(scene):
    settings = bpy.context.scene.sketch2mesh
    for remesh in ("NONE", "QUADS"):
        settings.remesh, settings.target_faces = remesh, 1200
        drawn = draw(panel.SKETCH2MESH_PT_reconstruct)
        assert ("prop", "remesh") in drawn and ("prop", "target_faces") in drawn
        assert (("inactive", "target_faces") in drawn) == (remesh == "NONE")
        button = operators_drawn(drawn)["sketch2mesh.reconstruct"]
        assert (button.remesh, button.target_faces) == (remesh, 1200)


def test_fit_button_carries_the_scenes_iterations(scene):
    bpy.context.scene.sketch2mesh.fit_iterations = 37
    assert operators_drawn(draw(panel.SKETCH2MESH_PT_refine))["sketch2mesh.fit_strokes"].iterations == 37


def test_a_running_job_replaces_the_buttons_with_its_progress_and_cancel(scene, running_job):
    job, release = running_job
    for panel_class, button in ((panel.SKETCH2MESH_PT_reconstruct, "sketch2mesh.reconstruct"),
                                (panel.SKETCH2MESH_PT_refine, "sketch2mesh.fit_strokes")):
        drawn = draw(panel_class)
        assert ("progress", "Reconstruct: Fusing", 0.4) in drawn
        assert set(operators_drawn(drawn)) == {"sketch2mesh.cancel"}
    assert bpy.ops.sketch2mesh.cancel() == {"FINISHED"}
    assert ("progress", "Reconstruct: cancelling", 0.4) in draw(panel.SKETCH2MESH_PT_reconstruct)
    release.set()
    assert job.done.wait(WAIT_S)
    assert "sketch2mesh.reconstruct" in operators_drawn(draw(panel.SKETCH2MESH_PT_reconstruct))


def test_refine_names_the_sketch_a_mesh_came_from_else_offers_a_pick(scene, draw_sketch):
    sketch = draw_sketch()
    bpy.ops.mesh.primitive_cube_add()
    assert ("prop", "fit_sketch") in draw(panel.SKETCH2MESH_PT_refine)
    mesh = bpy.context.view_layer.objects.active
    mesh[mesh_import.SOURCE_PROPERTY] = sketch.name          # an older file's link: the sketch's name
    drawn = draw(panel.SKETCH2MESH_PT_refine)
    assert f"Sketch: {sketch.name}" in labels(drawn) and ("prop", "fit_sketch") not in drawn
    del mesh[mesh_import.SOURCE_PROPERTY]
    mesh.sketch2mesh.sketch = sketch                        # today's link: a pointer, which a rename keeps
    sketch.name = "Renamed Sketch"
    assert "Sketch: Renamed Sketch" in labels(draw(panel.SKETCH2MESH_PT_refine))


def test_refine_shows_the_last_fits_ious(scene):
    bpy.ops.mesh.primitive_cube_add()
    assert not any("IoU" in text for text in labels(draw(panel.SKETCH2MESH_PT_refine)))
    mesh_import.store_fit_report(bpy.context.view_layer.objects.active, {
        "iou_before": {"front": 0.5, "side": 0.25}, "iou_after": {"front": 0.875, "side": 0.75},
        "flipped_faces": 2, "iterations": 40, "cancelled": True})
    drawn = labels(draw(panel.SKETCH2MESH_PT_refine))
    report = drawn[drawn.index("Last fit (cancelled, best so far)") + 1:]
    assert all(len(line) <= panel.NOTE_CHARACTERS for line in report)
    # The protocol's wording, the one the operator's message and the server's command line use.
    assert " ".join(report) == "Silhouette IoU front 0.500 -> 0.875, side 0.250 -> 0.750 2 flipped faces, 40 iterations"
    assert protocol.describe_fit({"iou_before": {"front": 0.5, "side": 0.25}, "iou_after": {"front": 0.875,
                                  "side": 0.75}, "flipped_faces": 2, "iterations": 40}) == \
        "silhouette IoU front 0.500 -> 0.875, side 0.250 -> 0.750; 2 flipped faces, 40 iterations"


def test_refine_says_when_the_mesh_already_matched(scene):
    bpy.ops.mesh.primitive_cube_add()
    mesh_import.store_fit_report(bpy.context.view_layer.objects.active, {
        "iou_before": {"front": 0.99}, "iou_after": {"front": 0.99}, "already_matched": True})
    drawn = labels(draw(panel.SKETCH2MESH_PT_refine))
    report = " ".join(drawn[drawn.index("Last fit") + 1:])
    assert report.startswith("Silhouette IoU front 0.990 -> 0.990 The mesh already matches the strokes")


def test_reconstruct_shows_the_servers_notes_on_the_active_mesh_wrapped(scene):
    bpy.ops.mesh.primitive_cube_add()
    before = labels(draw(panel.SKETCH2MESH_PT_reconstruct))
    note = ("Only the front view is drawn, so the shape is inflated from its outline; draw the side view too "
            "for a truer shape.")
    bpy.context.view_layer.objects.active[mesh_import.NOTES_PROPERTY] = [note]
    lines = labels(draw(panel.SKETCH2MESH_PT_reconstruct))[len(before):]
    assert len(lines) > 1 and all(len(line) <= panel.NOTE_CHARACTERS for line in lines)
    assert " ".join(lines) == note


def test_sketch_panel_buttons_switch_to_each_views_layer(scene, draw_sketch):
    assert "No sketch active" in labels(draw(panel.SKETCH2MESH_PT_sketch))
    sketch = draw_sketch()
    drawn = draw(panel.SKETCH2MESH_PT_sketch)
    assert "No sketch active" not in labels(drawn)
    views = [item[2].view for item in drawn if item[0] == "operator" and item[1] == "sketch2mesh.view"]
    assert views == ["FRONT", "SIDE", "TOP"]
    for view in views:
        bpy.ops.sketch2mesh.view(view=view)
        assert sketch.data.layers.active == strokes.find_layer(sketch, view.title())


def test_server_box_tells_the_environments_state_at_a_glance(scene, tmp_path, monkeypatch):
    import json
    import sys

    from sketch2mesh_addon import preferences, server_operators, server_setup

    env_dir = tmp_path / "env"
    env_dir.mkdir()
    monkeypatch.setattr(preferences, "env_dir", lambda: env_dir)
    monkeypatch.delenv(preferences.SERVER_PYTHON_ENV, raising=False)
    prefs = preferences.preferences()
    saved, prefs.server_python = prefs.server_python, ""
    try:
        drawn = draw(panel.SKETCH2MESH_PT_server)
        assert "not set up (about 1 GB to download)" in labels(drawn)
        assert "sketch2mesh.setup_server" in operators_drawn(drawn)

        server_setup.last_failure = server_setup.SetupError("Could not download the server's packages: check the "
                                                            "internet connection.", "pip line one\npip line two")
        drawn = labels(draw(panel.SKETCH2MESH_PT_server))
        pip = drawn.index("pip line one")
        assert drawn[pip + 1] == "pip line two"
        assert " ".join(drawn[pip - 2:pip]) == ("Could not download the server's packages: check the internet "
                                                "connection.")                       # the sentence, wrapped, then pip

        marker = env_dir / server_setup.READY_FILE
        stamp = server_setup.source_stamp(preferences.carried_source())
        marker.write_text(json.dumps({"python": sys.executable, "flavour": "cpu", "gpu": "", "stamp": stamp}))
        drawn = draw(panel.SKETCH2MESH_PT_server)
        assert "ready: CPU" in labels(drawn) and not any("pip line" in text for text in labels(drawn))
        marker.write_text(json.dumps({"python": sys.executable, "flavour": "cuda", "gpu": "NVIDIA H200",
                                      "stamp": stamp}))
        assert "ready: CUDA (NVIDIA H200)" in labels(draw(panel.SKETCH2MESH_PT_server))
        # Set up from an older extension's server: still usable, and the box says how to update it.
        marker.write_text(json.dumps({"python": sys.executable, "flavour": "cpu", "stamp": "0123456789abcdef"}))
        assert "ready: CPU, from an older extension: click Repair" in labels(draw(panel.SKETCH2MESH_PT_server))
        marker.write_text(json.dumps({"python": sys.executable, "flavour": "cpu", "gpu": "", "stamp": stamp}))

        prefs.server_python = "/opt/own/bin/python"       # a pipeline engineer's own environment
        assert "own environment: /opt/own/bin/python" in labels(draw(panel.SKETCH2MESH_PT_server))

        reached, release = threading.Event(), threading.Event()

        def work(progress, cancel):
            progress("Downloading open3d (400.8 MB) (CPU)", 0.4)
            reached.set()
            release.wait(WAIT_S)

        job = jobs.submit(server_operators.SETUP_TITLE, work)
        assert reached.wait(WAIT_S)
        drawn = draw(panel.SKETCH2MESH_PT_server)
        assert ("progress", "setting up… 40%", 0.4) in drawn
        assert "Set up server: Downloading open3d (400.8 MB) (CPU)" in labels(drawn)
        assert "sketch2mesh.cancel" in operators_drawn(drawn)
        release.set()
        assert job.done.wait(WAIT_S)
    finally:
        prefs.server_python = saved
        server_setup.last_failure = None


def test_preferences_offer_set_up_with_its_options_and_keep_server_python(scene, monkeypatch, tmp_path):
    from sketch2mesh_addon import preferences

    monkeypatch.setattr(preferences, "env_dir", lambda: tmp_path / "env")
    monkeypatch.delenv(preferences.SERVER_PYTHON_ENV, raising=False)
    prefs = preferences.preferences()
    saved, prefs.server_python = prefs.server_python, ""
    try:
        layout = Layout()
        preferences.Sketch2MeshPreferences.draw(SimpleNamespace(layout=layout), bpy.context)
    finally:
        prefs.server_python = saved
    props = {item[1] for item in layout.drawn if item[0] == "prop"}
    assert {"setup_flavour", "setup_python", "wheelhouse", "torch_index", "server_python"} <= props
    assert "sketch2mesh.setup_server" in operators_drawn(layout.drawn)
    assert any(text.startswith(("NVIDIA GPU: ", "No NVIDIA GPU found")) for text in labels(layout.drawn))

"""The operators, run in background mode against a real server process over a real socket."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from sketch2mesh_addon import mesh_import, protocol, strokes


def _reconstruct(**options):
    return bpy.ops.sketch2mesh.reconstruct(backend=options.pop("backend", "HULL"), **options)


def _mesh_vertices(obj) -> np.ndarray:
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    return (co.reshape(-1, 3) @ np.array(obj.matrix_world)[:3, :3].T) + np.array(obj.matrix_world)[:3, 3]


def test_new_sketch_adds_an_active_sketch_with_three_layers(scene):
    assert bpy.ops.sketch2mesh.new_sketch() == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert obj.name == "Sketch" and strokes.is_sketch(obj)
    assert all(strokes.find_layer(obj, name) is not None for name in ("Front", "Side", "Top"))
    assert obj.select_get()


def test_view_operator_makes_the_matching_layer_active(scene):
    bpy.ops.sketch2mesh.new_sketch()
    obj = bpy.context.view_layer.objects.active
    bpy.ops.sketch2mesh.view(view="SIDE")
    assert obj.data.layers.active == strokes.find_layer(obj, "Side")




def _as_from_the_ui(operator, **options) -> set[str]:
    """Call an operator with Blender's undo push on, as a button does ("EXEC_DEFAULT", undo=True)."""
    return operator("EXEC_DEFAULT", True, **options)


def test_new_sketch_is_one_undo_step(scene, undo_window):
    with undo_window():
        bpy.ops.ed.undo_push(message="before")   # background mode starts with undo off
    assert _as_from_the_ui(bpy.ops.sketch2mesh.new_sketch) == {"FINISHED"}
    with undo_window():
        bpy.ops.ed.undo()
        assert "Sketch" not in bpy.data.objects
        bpy.ops.ed.redo()
    assert strokes.is_sketch(bpy.data.objects["Sketch"])


@pytest.mark.slow
def test_reconstruct_and_fit_are_one_undo_step_each(served_scene, draw_sketch, undo_window):
    draw_sketch()
    with undo_window():
        bpy.ops.ed.undo_push(message="before")
    assert _as_from_the_ui(bpy.ops.sketch2mesh.reconstruct, backend="HULL", detail="LOW") == {"FINISHED"}
    assert _as_from_the_ui(bpy.ops.sketch2mesh.fit_strokes, iterations=5) == {"FINISHED"}
    with undo_window():
        bpy.ops.ed.undo()
        assert bpy.data.objects["Sketch_mesh"].data.shape_keys is None   # the fit, undone alone
        bpy.ops.ed.undo()
        assert "Sketch_mesh" not in bpy.data.objects                     # then the reconstruction
        bpy.ops.ed.redo()
        bpy.ops.ed.redo()
    assert bpy.data.objects["Sketch_mesh"].data.shape_keys.key_blocks.get(mesh_import.FITTED_KEY) is not None


@pytest.mark.slow
def test_reconstruct_adds_a_mesh_where_the_strokes_are(served_scene, draw_sketch, scene_state):
    sketch = draw_sketch()
    before = scene_state()
    assert _reconstruct() == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert obj.type == "MESH" and obj.name == "Sketch_mesh"
    assert obj.sketch2mesh.sketch == sketch
    assert [o.name for o in bpy.context.view_layer.objects if o.select_get()] == [obj.name]
    assert len(obj.data.polygons) > 100 and all(p.use_smooth for p in obj.data.polygons[:10])
    assert obj.data.materials[0] is not None
    # The mesh overlays the strokes: its front extent is the rectangle's, its side extent the circle's.
    v = _mesh_vertices(obj)
    np.testing.assert_allclose([v[:, 0].min(), v[:, 0].max()], [-0.6, 0.6], atol=0.08)
    np.testing.assert_allclose([v[:, 2].min(), v[:, 2].max()], [-0.4, 0.4], atol=0.08)
    np.testing.assert_allclose([v[:, 1].min(), v[:, 1].max()], [-0.4, 0.4], atol=0.08)
    assert scene_state()[2] == before[2]  # the sketch is untouched


@pytest.mark.slow
def test_reconstruct_follows_a_moved_sketch(served_scene, draw_sketch):
    sketch = draw_sketch()
    sketch.location = (2.0, -1.0, 0.5)
    _reconstruct(detail="LOW")
    v = _mesh_vertices(bpy.context.view_layer.objects.active)
    centre = (v.min(axis=0) + v.max(axis=0)) / 2
    np.testing.assert_allclose(centre, [2.0, -1.0, 0.5], atol=0.08)


@pytest.mark.slow
@pytest.mark.parametrize("view", ["front", "side"])
def test_one_view_alone_is_inflated_where_its_strokes_are(served_scene, draw_sketch, capfd, view):
    # A circle of radius 0.4 on one layer only, drawn 0.3 deep along that view's axis
    # (world y for the front, x for the side), in a sketch moved off the origin.
    sketch = draw_sketch({})
    strokes.write_view(sketch, view, [_ring(96) * 0.4], depth=0.3)
    sketch.location = (2.0, -1.0, 0.5)
    assert _reconstruct(detail="LOW") == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert obj.type == "MESH" and obj.sketch2mesh.sketch == sketch
    # A sphere of the circle's radius, centred on the strokes: the unseen axis at their depth.
    v = _mesh_vertices(obj)
    expected = np.array([2.0, -1.0 + 0.3, 0.5]) if view == "front" else np.array([2.0 + 0.3, -1.0, 0.5])
    np.testing.assert_allclose((v.min(axis=0) + v.max(axis=0)) / 2, expected, atol=0.05)
    np.testing.assert_allclose(v.max(axis=0) - v.min(axis=0), [0.8, 0.8, 0.8], atol=0.1)
    # The server's note says a second view gives a truer shape: on the object, for the
    # panel, and reported by the operator.
    notes = mesh_import.notes(obj)
    assert any("truer shape" in note for note in notes), notes
    assert notes[0] in capfd.readouterr().out
    # Fit to strokes works on it too, and leaves it where it is.
    assert bpy.ops.sketch2mesh.fit_strokes(iterations=5) == {"FINISHED"}
    key = obj.data.shape_keys.key_blocks[mesh_import.FITTED_KEY].data
    fitted = np.empty(len(key) * 3, np.float32)
    key.foreach_get("co", fitted)
    fitted = fitted.reshape(-1, 3) + np.array(obj.matrix_world)[:3, 3]
    np.testing.assert_allclose((fitted.min(axis=0) + fitted.max(axis=0)) / 2, expected, atol=0.05)


@pytest.mark.slow
def test_one_undo_step_removes_the_mesh(served_scene, draw_sketch, scene_state):
    draw_sketch()
    before = scene_state()
    window = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=window, screen=window.screen, area=window.screen.areas[0]):
        bpy.ops.ed.undo_push(message="before")
        _reconstruct()
        bpy.ops.ed.undo_push(message="Reconstruct from Sketch")  # what Blender's UI does after an UNDO operator
        assert "Sketch_mesh" in bpy.data.objects
        bpy.ops.ed.undo()
    assert "Sketch_mesh" not in bpy.data.objects
    assert scene_state() == before


@pytest.mark.slow
def test_the_learned_backend_reconstructs_with_the_shipped_weights(served_scene, draw_sketch):
    sketch = draw_sketch()
    assert _reconstruct(backend="LEARNED", detail="LOW") == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert obj.type == "MESH" and obj is not sketch
    assert obj["sketch2mesh_backend"] in ("learned", "hull")   # hull only when the network's outline missed


SQUARE = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]], np.float32)


def _ring(n: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n)
    return np.stack([np.cos(t), np.sin(t)], axis=1).astype(np.float32)


def _with_nan(stroke: np.ndarray) -> np.ndarray:
    stroke = stroke.copy()
    stroke[2, 0] = np.nan
    return stroke


BAD_SKETCHES = {
    "empty": (lambda: {}, "The sketch is empty"),
    "top view only": (lambda: {"top": [SQUARE]}, "Only the top view is drawn: draw the object's outline on the "
                                                 "Front layer, the Side layer or both"),
    "nan point": (lambda: {"front": [_with_nan(SQUARE)], "side": [SQUARE]}, r"invalid \(NaN or infinite\)"),
    "single-point strokes": (lambda: {"front": [SQUARE[:1], SQUARE[2:3]], "side": [SQUARE]},
                             "only single-point strokes"),
    "too many points": (lambda: {"front": [_ring(101)] * 500, "side": [_ring(101)] * 500},
                        f"more than the {protocol.MAX_POINTS} allowed"),
}


@pytest.mark.parametrize("kind", sorted(BAD_SKETCHES))
def test_bad_sketch_is_a_one_line_error_and_changes_nothing(scene, draw_sketch, scene_state, kind):
    make, message = BAD_SKETCHES[kind]
    draw_sketch(make())
    before = scene_state()
    with pytest.raises(RuntimeError, match=message) as error:
        _reconstruct()
    assert len(str(error.value).strip().splitlines()) == 1
    assert scene_state() == before


def test_unreachable_server_is_a_clear_error_and_changes_nothing(scene, draw_sketch, scene_state):
    draw_sketch()
    before = scene_state()
    port = bpy.context.preferences.addons["sketch2mesh_addon"].preferences.port
    with pytest.raises(RuntimeError, match=f"server is not running at 127.0.0.1:{port}; start it from the "
                                           "Sketch2Mesh panel or check the Server Python preference"):
        _reconstruct()
    assert scene_state() == before


@pytest.mark.slow
def test_wrong_token_is_a_clear_error_and_changes_nothing(served_scene, server, draw_sketch, scene_state):
    draw_sketch()
    before = scene_state()
    token_file = protocol.token_path(server["port"])
    good = token_file.read_text()
    token_file.write_text("not-the-token")
    try:
        with pytest.raises(RuntimeError, match="rejected the access token"):
            _reconstruct()
    finally:
        token_file.write_text(good)
    assert scene_state() == before
    assert _reconstruct() == {"FINISHED"}  # and the server still serves


def test_operator_choices_are_the_protocols():
    from sketch2mesh_addon import props

    assert sorted(item[0].lower() for item in props.BACKENDS) == sorted(protocol.BACKENDS)
    assert [item[0].lower() for item in props.DETAILS] == list(protocol.DETAILS)


def test_operator_defaults_and_roundness_slider_are_the_protocols(addon):
    properties = bpy.ops.sketch2mesh.reconstruct.get_rna_type().properties
    assert properties["backend"].default.lower() == protocol.DEFAULT_BACKEND
    roundness = properties["roundness"]
    assert roundness.default == protocol.DEFAULT_ROUNDNESS and roundness.subtype == "FACTOR"
    assert (roundness.hard_min, roundness.hard_max) == protocol.ROUNDNESS_RANGE


@pytest.mark.slow
def test_the_round_backend_follows_its_roundness(served_scene, draw_sketch):
    # The box sketch's cross-sections: the hull's rectangles at roundness 0, the ellipses
    # inscribed in them (pi/4 of their area) at 1, the outlines as drawn either way.
    sketch = draw_sketch()
    volumes = {}
    for roundness in (0.0, 0.5, 1.0):
        bpy.context.view_layer.objects.active = sketch
        assert _reconstruct(backend="ROUND", roundness=roundness, detail="LOW") == {"FINISHED"}
        obj = bpy.context.view_layer.objects.active
        assert obj["sketch2mesh_backend"] == "round"
        v = _mesh_vertices(obj)
        np.testing.assert_allclose([v[:, 0].min(), v[:, 0].max(), v[:, 2].min(), v[:, 2].max()],
                                   [-0.6, 0.6, -0.4, 0.4], atol=0.08)
        volumes[roundness] = _volume(obj)
    assert volumes[0.0] > volumes[0.5] > volumes[1.0] > 0.7 * volumes[0.0], volumes


def _volume(obj) -> float:
    import bmesh

    mesh = bmesh.new()
    mesh.from_mesh(obj.data)
    try:
        return mesh.calc_volume()
    finally:
        mesh.free()

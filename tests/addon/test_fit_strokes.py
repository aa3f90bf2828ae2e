"""Fit to strokes from Blender: the operator against a real server, the "Fitted" shape key,
and what happens to the shape keys when a fit fails."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from sketch2mesh_addon import jobs, mesh_import


def _keys(obj) -> list[str]:
    return [k.name for k in obj.data.shape_keys.key_blocks] if obj.data.shape_keys else []


def _key_world(obj, name: str) -> np.ndarray:
    data = obj.data.shape_keys.key_blocks[name].data
    co = np.empty(len(data) * 3, np.float32)
    data.foreach_get("co", co)
    matrix = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def _sphere(radius: float = 0.25, location=(0.0, 0.0, 0.0)):
    """A user's own mesh: a UV sphere (quads and triangles), active."""
    bpy.ops.mesh.primitive_uv_sphere_add(radius=radius, location=location, segments=32, ring_count=16)
    return bpy.context.view_layer.objects.active


def test_fitted_shape_is_shown_then_restored_without_leaving_keys(scene):
    obj = _sphere()
    basis = mesh_import.world_triangles(obj)[0]
    shape = mesh_import.FittedShape(obj)
    shape.show(basis * 1.5)
    assert _keys(obj) == ["Basis", "Fitted"] and obj.data.shape_keys.key_blocks["Fitted"].value == 1.0
    np.testing.assert_allclose(_key_world(obj, "Fitted"), basis * 1.5, atol=1e-5)
    np.testing.assert_allclose(_key_world(obj, "Basis"), basis, atol=1e-6)
    shape.restore()
    assert obj.data.shape_keys is None


def test_fitted_shape_restores_an_earlier_fit(scene):
    obj = _sphere()
    basis = mesh_import.world_triangles(obj)[0]
    mesh_import.FittedShape(obj).show(basis * 1.2)
    again = mesh_import.FittedShape(obj)
    again.show(basis * 2.0)
    again.restore()
    assert _keys(obj) == ["Basis", "Fitted"]
    np.testing.assert_allclose(_key_world(obj, "Fitted"), basis * 1.2, atol=1e-5)


def test_world_triangles_triangulates_in_world_space(scene):
    obj = _sphere(location=(1.0, 2.0, 3.0))
    vertices, faces = mesh_import.world_triangles(obj)
    assert faces.shape[1] == 3 and len(faces) == 2 * 32 * 16 - 2 * 32 and faces.max() < len(vertices)
    np.testing.assert_allclose(vertices.mean(axis=0), [1.0, 2.0, 3.0], atol=1e-3)


def test_latest_hands_over_the_newest_value_once():
    latest = jobs.Latest()
    assert latest.take() is None
    latest.put(1)
    latest.put(2)
    assert latest.take() == 2 and latest.take() is None


def test_fit_needs_a_sketch_and_changes_nothing_without_one(scene):
    obj = _sphere()
    with pytest.raises(RuntimeError, match="no sketch to fit to"):
        bpy.ops.sketch2mesh.fit_strokes(iterations=5)
    assert obj.data.shape_keys is None


def test_fit_needs_an_active_mesh(scene, draw_sketch):
    draw_sketch()
    with pytest.raises(RuntimeError):
        bpy.ops.sketch2mesh.fit_strokes(iterations=5)


def test_unreachable_server_leaves_the_shape_keys_alone(scene, draw_sketch):
    sketch = draw_sketch()
    obj = _sphere()
    with pytest.raises(RuntimeError, match="server is not running"):
        bpy.ops.sketch2mesh.fit_strokes(iterations=5, sketch=sketch.name)
    assert obj.data.shape_keys is None


@pytest.mark.slow
def test_fit_pulls_a_users_mesh_onto_the_picked_sketch(served_scene, draw_sketch):
    sketch = draw_sketch()                       # front: 1.2 x 0.8 rectangle; side: circle of radius 0.4
    obj = _sphere(radius=0.25)
    bpy.context.scene.sketch2mesh.fit_sketch = sketch
    basis = mesh_import.world_triangles(obj)[0]
    assert bpy.ops.sketch2mesh.fit_strokes(iterations=120) == {"FINISHED"}
    assert _keys(obj) == ["Basis", "Fitted"] and obj.data.shape_keys.key_blocks["Fitted"].value == 1.0
    np.testing.assert_allclose(_key_world(obj, "Basis"), basis, atol=1e-6)   # the original is kept
    fitted = _key_world(obj, "Fitted")
    np.testing.assert_allclose(fitted.max(axis=0) - fitted.min(axis=0), [1.2, 0.8, 0.8], atol=0.1)
    report = obj[mesh_import.FIT_PROPERTY]
    for view in ("front", "side"):
        assert report["iou_after"][view] > report["iou_before"][view] + 0.2 and report["iou_after"][view] > 0.85


@pytest.mark.slow
def test_fit_uses_the_sketch_a_mesh_came_from_and_one_undo_reverts_it(served_scene, draw_sketch):
    sketch = draw_sketch()
    sketch.location = (2.0, -1.0, 0.5)
    bpy.ops.sketch2mesh.reconstruct(backend="HULL", detail="LOW")
    obj = bpy.context.view_layer.objects.active
    window = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=window, screen=window.screen, area=window.screen.areas[0]):
        bpy.ops.ed.undo_push(message="before")
        assert bpy.ops.sketch2mesh.fit_strokes(iterations=10) == {"FINISHED"}
        bpy.ops.ed.undo_push(message="Fit to Strokes")
        obj = bpy.data.objects["Sketch_mesh"]
        assert _keys(obj) == ["Basis", "Fitted"]
        fitted = _key_world(obj, "Fitted")
        np.testing.assert_allclose((fitted.min(axis=0) + fitted.max(axis=0)) / 2, [2.0, -1.0, 0.5], atol=0.08)
        report = obj[mesh_import.FIT_PROPERTY]
        assert all(report["iou_after"][v] >= report["iou_before"][v] - 0.01 for v in ("front", "side"))
        bpy.ops.ed.undo()
    assert bpy.data.objects["Sketch_mesh"].data.shape_keys is None


@pytest.mark.slow
def test_open_mesh_is_fitted_with_a_warning(served_scene, draw_sketch):
    sketch = draw_sketch()
    obj = _sphere(radius=0.3)
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.select_all(action="DESELECT")
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.data.polygons[0].select = True
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.delete(type="FACE")
    bpy.ops.object.mode_set(mode="OBJECT")
    assert bpy.ops.sketch2mesh.fit_strokes(iterations=5, sketch=sketch.name) == {"FINISHED"}
    assert _keys(obj) == ["Basis", "Fitted"]


# --- The link from a mesh to its sketch -----------------------------------------------


def test_the_link_to_the_sketch_survives_a_rename_and_an_older_files_name_is_upgraded(scene, draw_sketch):
    sketch = draw_sketch()
    linked, legacy = _sphere(), _sphere(location=(1.0, 0.0, 0.0))
    mesh_import.link_sketch(linked, sketch)
    legacy[mesh_import.SOURCE_PROPERTY] = sketch.name      # what files from before the pointer carry
    assert mesh_import.source_sketch(legacy) == sketch and mesh_import.SOURCE_PROPERTY in legacy
    sketch.name = "Renamed"
    assert mesh_import.fit_sketch(bpy.context, linked) == sketch
    assert mesh_import.source_sketch(legacy) is None         # the old name link breaks on a rename...
    sketch.name = "Sketch"
    assert mesh_import.fit_sketch(bpy.context, legacy) == sketch   # ...so the first fit upgrades it
    assert legacy.sketch2mesh.sketch == sketch and mesh_import.SOURCE_PROPERTY not in legacy
    sketch.name = "Renamed again"
    assert mesh_import.fit_sketch(bpy.context, legacy) == sketch


def test_a_deleted_sketch_is_no_longer_the_meshs(scene, draw_sketch):
    sketch = draw_sketch()
    obj = _sphere()
    mesh_import.link_sketch(obj, sketch)
    bpy.context.view_layer.objects.active = sketch
    for other in bpy.context.view_layer.objects:
        other.select_set(other == sketch)
    bpy.ops.object.delete()              # the pointer keeps the object in the file, out of every scene
    assert mesh_import.source_sketch(obj) is None
    bpy.context.view_layer.objects.active = obj
    with pytest.raises(RuntimeError, match="no sketch to fit to"):
        bpy.ops.sketch2mesh.fit_strokes(iterations=5)


@pytest.mark.slow
def test_fit_finds_the_sketch_after_it_is_renamed(served_scene, draw_sketch):
    sketch = draw_sketch()
    bpy.ops.sketch2mesh.reconstruct(backend="HULL", detail="LOW")
    obj = bpy.context.view_layer.objects.active
    sketch.name = "Chair outline"
    assert bpy.ops.sketch2mesh.fit_strokes(iterations=5) == {"FINISHED"}
    assert _keys(obj) == ["Basis", "Fitted"] and obj.sketch2mesh.sketch == sketch


@pytest.mark.slow
def test_a_mesh_with_only_an_older_files_name_link_still_fits(served_scene, draw_sketch):
    sketch = draw_sketch()
    obj = _sphere(radius=0.3)
    obj[mesh_import.SOURCE_PROPERTY] = sketch.name
    assert bpy.ops.sketch2mesh.fit_strokes(iterations=5) == {"FINISHED"}
    assert _keys(obj) == ["Basis", "Fitted"]
    assert obj.sketch2mesh.sketch == sketch and mesh_import.SOURCE_PROPERTY not in obj

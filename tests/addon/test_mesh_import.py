"""Turning the server's arrays into a Blender object."""

from __future__ import annotations

import bpy
import numpy as np

from sketch2mesh_addon import mesh_import

TETRA_V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
TETRA_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)


def test_build_mesh_keeps_geometry_and_is_smooth(scene):
    mesh = mesh_import.build_mesh("tetra", TETRA_V, TETRA_F)
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    np.testing.assert_array_equal(co.reshape(-1, 3), TETRA_V)
    assert [tuple(p.vertices) for p in mesh.polygons] == [tuple(f) for f in TETRA_F]
    assert len(mesh.edges) == 6
    assert all(p.use_smooth for p in mesh.polygons)
    assert mesh.materials[0].name == mesh_import.MATERIAL_NAME


def test_add_result_is_named_after_the_sketch_active_selected_and_tagged(draw_sketch, scene_state):
    sketch = draw_sketch()
    before = scene_state()
    obj = mesh_import.add_result(bpy.context, sketch, TETRA_V, TETRA_F, {"backend": "hull"})
    assert obj.name == "Sketch_mesh"
    assert obj.sketch2mesh.sketch == sketch and mesh_import.SOURCE_PROPERTY not in obj
    assert bpy.context.view_layer.objects.active == obj
    assert [o.name for o in bpy.context.view_layer.objects if o.select_get()] == ["Sketch_mesh"]
    assert scene_state()[2] == before[2]  # the sketch's strokes are untouched


def test_add_result_keeps_the_servers_notes_for_the_panel(draw_sketch):
    sketch = draw_sketch()
    plain = mesh_import.add_result(bpy.context, sketch, TETRA_V, TETRA_F, {"backend": "hull", "notes": []})
    assert mesh_import.notes(plain) == [] and mesh_import.NOTES_PROPERTY not in plain
    note = "Only the front view is drawn, so the shape is inflated from its outline; draw the side view too."
    noted = mesh_import.add_result(bpy.context, sketch, TETRA_V, TETRA_F, {"backend": "hull", "notes": [note]})
    assert mesh_import.notes(noted) == [note]

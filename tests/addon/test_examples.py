"""Every bundled example, drawn into a Grease Pencil object, reconstructs at every detail
level through the operator and a real server: the Blender half of the issue's "every
bundled example builds" (the server half is tests/model_server/reconstruct/test_examples.py)."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

from sketch2mesh_addon import headless, mesh_import

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "strokes.json").is_file())


def _world_vertices(obj) -> np.ndarray:
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    matrix = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def _closed(obj) -> bool:
    """Every edge of the mesh lies on exactly two faces."""
    import bmesh

    mesh = bmesh.new()
    mesh.from_mesh(obj.data)
    try:
        return all(len(edge.link_faces) == 2 for edge in mesh.edges)
    finally:
        mesh.free()


# The round backend (the default) at every detail; the learned and hull backends at the default detail.
CASES = [(name, detail, "ROUND") for name in NAMES for detail in ("LOW", "MEDIUM", "HIGH")] + \
    [(name, "MEDIUM", backend) for name in NAMES for backend in ("LEARNED", "HULL")]


def test_the_round_backend_is_the_default(scene):
    assert bpy.ops.sketch2mesh.reconstruct.get_rna_type().properties["backend"].default == "ROUND"
    assert bpy.context.scene.sketch2mesh.backend == "ROUND"


@pytest.mark.slow
@pytest.mark.parametrize("name,detail,backend", CASES)
def test_example_sketch_reconstructs_where_it_is_drawn(served_scene, draw_sketch, name, detail, backend):
    lines = headless.read_strokes_json(EXAMPLES / name / "strokes.json")
    sketch = draw_sketch(lines)
    assert bpy.ops.sketch2mesh.reconstruct(backend=backend, detail=detail) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert obj.type == "MESH" and mesh_import.source_sketch(obj) == sketch and _closed(obj)
    assert obj["sketch2mesh_backend"] == backend.lower()
    vertices = _world_vertices(obj)
    front = np.concatenate(lines["front"])
    side = np.concatenate(lines["side"])
    np.testing.assert_allclose([vertices[:, 0].min(), vertices[:, 0].max()], [front[:, 0].min(), front[:, 0].max()], atol=0.05)
    np.testing.assert_allclose([vertices[:, 1].min(), vertices[:, 1].max()], [side[:, 0].min(), side[:, 0].max()], atol=0.05)
    np.testing.assert_allclose([vertices[:, 2].min(), vertices[:, 2].max()], [front[:, 1].min(), front[:, 1].max()], atol=0.05)

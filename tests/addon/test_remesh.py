"""Reconstruct's Remesh: Quads, Blender's QuadriFlow run on the new object: a closed all-quad
mesh near the target on every bundled example, one undo step with the reconstruction, the
triangle mesh kept (and a warning) when QuadriFlow fails, and Fit to strokes on the quads."""

from __future__ import annotations

import re
from pathlib import Path

import bpy
import bmesh  # after bpy, which puts it on the path in the bpy wheel
import numpy as np
import pytest

from sketch2mesh_addon import headless, mesh_import, operators, remesh, strokes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "strokes.json").is_file())
SCRIPT = Path(headless.__file__).resolve()


def _reconstruct(**options) -> set[str]:
    return bpy.ops.sketch2mesh.reconstruct(backend=options.pop("backend", "HULL"),
                                           detail=options.pop("detail", "LOW"), **options)




def _as_from_the_ui(operator, **options) -> set[str]:
    """Call an operator with Blender's undo push on, as a button does ("EXEC_DEFAULT", undo=True)."""
    return operator("EXEC_DEFAULT", True, **options)


def _sketch_strokes(name: str = "Sketch") -> dict[str, list[bytes]]:
    """Every stroke of a sketch, as bytes: what must never change."""
    return {view: [s.tobytes() for s in ss] for view, ss in strokes.read_sketch(bpy.data.objects[name]).items()}


def _sides(mesh: bpy.types.Mesh) -> np.ndarray:
    sides = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("loop_total", sides)
    return sides


def _closed(mesh: bpy.types.Mesh) -> bool:
    """Every edge lies on exactly two faces."""
    edges = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("edge_index", edges)
    return bool((np.bincount(edges, minlength=len(mesh.edges)) == 2).all())


def _world_vertices(obj: bpy.types.Object) -> np.ndarray:
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    matrix = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def _mesh_state(mesh: bpy.types.Mesh) -> tuple:
    """What "kept exactly as it was" compares: name, vertices, faces, shading and materials."""
    corners = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", corners)
    smooth = np.empty(len(mesh.polygons), bool)
    mesh.polygons.foreach_get("use_smooth", smooth)
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    return (mesh.name, co.tobytes(), corners.tobytes(), _sides(mesh).tobytes(), smooth.tobytes(),
            [m.name for m in mesh.materials])


def _check_quads(obj: bpy.types.Object, target: int) -> None:
    mesh = obj.data
    assert (_sides(mesh) == 4).all() and _closed(mesh)
    assert abs(len(mesh.polygons) - target) <= 0.2 * target, (len(mesh.polygons), target)
    assert mesh.validate(verbose=False) is False, "the quad mesh needed fixing"


def test_remesh_defaults_to_none_and_5000_faces_in_the_operator_and_the_panel(scene):
    properties = bpy.ops.sketch2mesh.reconstruct.get_rna_type().properties
    assert (properties["remesh"].default, properties["target_faces"].default) == ("NONE", 5000)
    assert [item.identifier for item in properties["remesh"].enum_items] == ["NONE", "QUADS"]
    settings = bpy.context.scene.sketch2mesh
    assert (settings.remesh, settings.target_faces) == ("NONE", 5000)
    assert operators.SKETCH2MESH_OT_reconstruct.bl_options >= {"UNDO"}


def test_headless_parses_remesh_and_target_faces():
    parser = headless.build_parser()
    args = parser.parse_args(["--out", "x.obj"])
    assert (args.remesh, args.target_faces) == ("none", 5000)
    args = parser.parse_args(["--remesh", "quads", "--target-faces", "800", "--out", "x.obj"])
    assert (args.remesh, args.target_faces) == ("quads", 800)
    with pytest.raises(SystemExit):
        parser.parse_args(["--remesh", "voxels", "--out", "x.obj"])


def test_remesh_quads_keeps_the_object_its_place_material_and_properties(served_scene, draw_sketch, capfd):
    sketch = draw_sketch()
    assert _reconstruct() == {"FINISHED"}
    first = bpy.context.view_layer.objects.active
    triangles = _world_vertices(first)
    bpy.data.meshes.remove(first.data)   # and the object with it
    meshes = len(bpy.data.meshes)   # the reconstruction adds one, and only one, whether remeshed or not
    bpy.context.view_layer.objects.active = sketch

    assert _reconstruct(remesh="QUADS", target_faces=800) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    _check_quads(obj, 800)
    assert obj.name == obj.data.name == "Sketch_mesh" and len(bpy.data.meshes) == meshes + 1
    assert [m.name for m in obj.data.materials] == [mesh_import.MATERIAL_NAME]
    assert obj.sketch2mesh.sketch == sketch and obj["sketch2mesh_backend"] == "hull"
    assert mesh_import.source_sketch(obj) == sketch and obj.select_get()
    assert np.array_equal(np.array(obj.matrix_world), np.eye(4))
    quads = _world_vertices(obj)
    np.testing.assert_allclose(quads.min(0), triangles.min(0), atol=0.03)
    np.testing.assert_allclose(quads.max(0), triangles.max(0), atol=0.03)
    assert f"Remeshed Sketch_mesh to {len(obj.data.polygons)} quads" in capfd.readouterr().out


def test_one_undo_removes_the_remeshed_reconstruction(served_scene, draw_sketch, undo_window):
    draw_sketch()
    drawn = _sketch_strokes()
    meshes = sorted(m.name for m in bpy.data.meshes)
    with undo_window():
        bpy.ops.ed.undo_push(message="before")   # background mode starts with undo off
    assert _as_from_the_ui(bpy.ops.sketch2mesh.reconstruct, backend="HULL", detail="LOW", remesh="QUADS",
                           target_faces=600) == {"FINISHED"}
    _check_quads(bpy.data.objects["Sketch_mesh"], 600)
    quads = _mesh_state(bpy.data.objects["Sketch_mesh"].data)

    with undo_window():
        bpy.ops.ed.undo()
    assert "Sketch_mesh" not in bpy.data.objects and sorted(m.name for m in bpy.data.meshes) == meshes
    assert _sketch_strokes() == drawn
    with undo_window():
        bpy.ops.ed.redo()
    assert _mesh_state(bpy.data.objects["Sketch_mesh"].data) == quads
    assert _sketch_strokes() == drawn


def _edit(mesh: bpy.types.Mesh, change) -> None:
    """Apply ``change(bmesh)`` to ``mesh``."""
    edited = bmesh.new()
    edited.from_mesh(mesh)
    edited.faces.ensure_lookup_table()
    change(edited)
    edited.to_mesh(mesh)
    edited.free()


def _flip_a_face(mesh: bmesh.types.BMesh) -> None:
    mesh.faces[0].normal_flip()


def _add_a_fin(mesh: bmesh.types.BMesh) -> None:
    """A third face on an edge."""
    mesh.edges.ensure_lookup_table()
    mesh.faces.new((*mesh.edges[0].verts, mesh.verts.new((2.0, 2.0, 2.0))))


def _refused_mesh(kind: str) -> bpy.types.Object:
    """A mesh QuadriFlow refuses: a closed sphere with one face turned inside out, or a
    cube with a fin."""
    if kind == "flipped":
        bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=3)
    else:
        bpy.ops.mesh.primitive_cube_add()
    obj = bpy.context.view_layer.objects.active
    _edit(obj.data, _flip_a_face if kind == "flipped" else _add_a_fin)
    obj.data.materials.append(mesh_import.clay_material())
    obj.location = (1.0, 2.0, 3.0)
    obj[mesh_import.SOURCE_PROPERTY] = "Sketch"
    return obj


@pytest.mark.parametrize("kind", ["flipped", "fin"])
def test_remesh_quads_keeps_a_mesh_quadriflow_refuses_exactly_as_it_was(scene, kind):
    obj = _refused_mesh(kind)
    before, meshes = _mesh_state(obj.data), len(bpy.data.meshes)
    reason = remesh.remesh_quads(bpy.context, obj, 500)
    assert reason == "it left the mesh unchanged; it needs a manifold mesh whose normals point one way"
    assert _mesh_state(obj.data) == before and len(bpy.data.meshes) == meshes
    assert tuple(obj.location) == (1.0, 2.0, 3.0) and obj[mesh_import.SOURCE_PROPERTY] == "Sketch"


def _sphere() -> bpy.types.Object:
    bpy.ops.mesh.primitive_uv_sphere_add(segments=48, ring_count=24)
    obj = bpy.context.view_layer.objects.active
    bpy.ops.object.modifier_add(type="TRIANGULATE")
    bpy.ops.object.modifier_apply(modifier=obj.modifiers[0].name)
    return obj


def _consistent(mesh: bpy.types.Mesh) -> bool:
    """Every edge is run once each way by its faces: the normals point one way."""
    corners = np.empty(len(mesh.loops), np.int64)
    mesh.loops.foreach_get("vertex_index", corners)
    starts = np.empty(len(mesh.polygons), np.int64)
    mesh.polygons.foreach_get("loop_start", starts)
    following = np.roll(corners, -1)
    ends = np.append(starts[1:], len(corners)) - 1          # each face's last corner wraps to its first
    following[ends] = corners[starts]
    directed = corners * len(mesh.vertices) + following
    return len(np.unique(directed)) == len(directed)


def _quad_box() -> bpy.types.Object:
    """A closed all-quad box, 4 x 4 quads a side."""
    bpy.ops.mesh.primitive_cube_add()
    obj = bpy.context.view_layer.objects.active
    _edit(obj.data, lambda b: bmesh.ops.subdivide_edges(b, edges=b.edges[:], cuts=3, use_grid_fill=True))
    return obj


def _two_faces_on_an_edge(mesh: bmesh.types.BMesh) -> list:
    first = mesh.faces[0]
    return [first, next(f for e in first.edges for f in e.link_faces if f is not first)]


def test_close_small_holes_closes_an_even_hole_with_quads_wound_like_their_neighbours(scene):
    obj = _quad_box()
    faces = len(obj.data.polygons)
    _edit(obj.data, lambda b: bmesh.ops.delete(b, geom=_two_faces_on_an_edge(b), context="FACES"))
    assert remesh.quad_mesh_problem(obj.data) == "it left 6 edges that do not join exactly two faces"
    assert remesh.close_small_holes(obj.data)
    assert remesh.quad_mesh_problem(obj.data) is None and len(obj.data.polygons) == faces
    assert _consistent(obj.data) and obj.data.validate(verbose=False) is False


def test_close_small_holes_leaves_holes_it_cannot_tile_alone(scene):
    obj = _quad_box()

    def corner_to_corner(mesh):
        """Two faces that share only a corner: their holes meet at a vertex."""
        first = mesh.faces[0]
        touching = {f for v in first.verts for f in v.link_faces}
        beside = {f for e in first.edges for f in e.link_faces}
        bmesh.ops.delete(mesh, geom=[first, next(iter(touching - beside))], context="FACES")

    _edit(obj.data, corner_to_corner)
    before = _mesh_state(obj.data)
    assert not remesh.close_small_holes(obj.data)
    assert _mesh_state(obj.data) == before
    _edit(obj.data, lambda b: bmesh.ops.delete(b, geom=b.faces[:12], context="FACES"))
    assert not remesh.close_small_holes(obj.data, most_edges=6)   # too long a ring


def test_a_run_that_leaves_a_defect_is_retried_with_the_next_seed_and_a_nudged_target(scene, monkeypatch):
    quadriflow, runs = remesh._quadriflow, []

    def leaves_a_triangle_first(context, obj, target, seed):
        """QuadriFlow, except that its first result keeps a triangle, as it now and then does."""
        runs.append((seed, target))
        reason, retry = quadriflow(context, obj, target, seed)
        if len(runs) == 1:
            _edit(obj.data, lambda b: bmesh.ops.triangulate(b, faces=b.faces[:1]))
            reason, retry = remesh.quad_mesh_problem(obj.data), True
        return reason, retry

    monkeypatch.setattr(remesh, "_quadriflow", leaves_a_triangle_first)
    obj = _sphere()
    meshes = len(bpy.data.meshes)
    assert remesh.remesh_quads(bpy.context, obj, 800) is None
    seed, nudge = remesh.QUADRIFLOW_SEED, remesh.QUADRIFLOW_NUDGES
    assert runs[:2] == [(seed, round(800 * nudge[0])), (seed + 1, round(800 * nudge[1]))]
    # QuadriFlow's count varies from run to run: a second run that misses the count by more
    # than QUADRIFLOW_RETARGET is re-aimed once, with the same seed, and that is all.
    assert len(runs) <= 3 and all(run[0] == seed + 1 for run in runs[2:])
    _check_quads(obj, 800)
    assert obj.data.name == "Sphere" and len(bpy.data.meshes) == meshes


def test_a_run_that_misses_the_face_count_is_rerun_once_with_a_corrected_target(scene, monkeypatch):
    quadriflow, runs = remesh._quadriflow, []

    def undershoots(context, obj, target, seed):
        """QuadriFlow aiming 40% low, as it can on some shapes."""
        result = quadriflow(context, obj, round(target * 0.6), seed)
        runs.append((target, len(obj.data.polygons)))
        return result

    monkeypatch.setattr(remesh, "_quadriflow", undershoots)
    obj = _sphere()
    assert remesh.remesh_quads(bpy.context, obj, 800) is None
    assert len(runs) == 2 and runs[0][0] == 800 and abs(runs[0][1] - 800) > remesh.QUADRIFLOW_RETARGET * 800
    assert runs[1][0] == round(800 * 800 / runs[0][1])
    assert len(obj.data.polygons) == min((count for _, count in runs), key=lambda count: abs(count - 800))
    assert (_sides(obj.data) == 4).all() and _closed(obj.data)


def test_reconstruct_keeps_the_triangles_and_warns_when_quadriflow_refuses(served_scene, draw_sketch, capfd,
                                                                           monkeypatch):
    add_result = mesh_import.add_result
    imported = {}

    def add_inside_out_face(*args, **kwargs):
        """The server's mesh with one face turned inside out, which QuadriFlow refuses."""
        obj = add_result(*args, **kwargs)
        _edit(obj.data, _flip_a_face)
        imported["state"] = _mesh_state(obj.data)
        return obj

    monkeypatch.setattr(mesh_import, "add_result", add_inside_out_face)
    draw_sketch()
    capfd.readouterr()
    assert _reconstruct(remesh="QUADS", target_faces=800) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert obj.name == "Sketch_mesh" and _mesh_state(obj.data) == imported["state"]
    assert (_sides(obj.data) == 3).all() and obj.sketch2mesh.sketch.name == "Sketch"
    assert ("QuadriFlow could not remesh Sketch_mesh to quads (it left the mesh unchanged; it needs a manifold "
            "mesh whose normals point one way); kept the triangle mesh.") in capfd.readouterr().out


def test_fit_to_strokes_runs_on_the_quad_mesh(served_scene, draw_sketch):
    draw_sketch()
    assert _reconstruct(remesh="QUADS", target_faces=800) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    quads = len(obj.data.polygons)
    vertices, faces = mesh_import.world_triangles(obj)
    assert len(faces) == 2 * quads and len(vertices) == len(obj.data.vertices)
    assert bpy.ops.sketch2mesh.fit_strokes(iterations=5) == {"FINISHED"}
    keys = obj.data.shape_keys.key_blocks
    assert [k.name for k in keys] == ["Basis", mesh_import.FITTED_KEY] and keys[mesh_import.FITTED_KEY].value == 1.0
    assert len(obj.data.polygons) == quads and (_sides(obj.data) == 4).all()
    report = obj[mesh_import.FIT_PROPERTY]           # a mesh that already matches its drawing is left as it is
    assert report["iterations"] >= 1 or report["already_matched"]


def test_headless_remeshes_to_quads(served_scene, draw_sketch, server, tmp_path):
    draw_sketch()
    bpy.context.view_layer.objects.active = None
    blend = tmp_path / "sketch.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    out = tmp_path / "quads.obj"
    argv = ["blender", "-b", str(blend), "-P", str(SCRIPT), "--", "--backend", "hull", "--detail", "low",
            "--remesh", "quads", "--target-faces", "700", "--port", str(server["port"]), "--out", str(out)]
    assert headless.main(argv) == 0
    faces = [line.split()[1:] for line in out.read_text().splitlines() if line.startswith("f ")]
    assert faces and all(len(face) == 4 for face in faces)
    assert abs(len(faces) - 700) <= 0.2 * 700


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_example_remeshes_to_closed_quads_near_the_target(served_scene, draw_sketch, name, capfd):
    lines = headless.read_strokes_json(EXAMPLES / name / "strokes.json")
    sketch = draw_sketch(lines)
    capfd.readouterr()
    assert _reconstruct(backend="ROUND", detail="MEDIUM", remesh="QUADS") == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    _check_quads(obj, 5000)
    assert obj.sketch2mesh.sketch == sketch
    # Where the strokes are, as tests/addon/test_examples.py checks the triangle mesh.
    vertices, front, side = _world_vertices(obj), np.concatenate(lines["front"]), np.concatenate(lines["side"])
    for axis, (drawn, column) in enumerate(((front, 0), (side, 0), (front, 1))):
        np.testing.assert_allclose([vertices[:, axis].min(), vertices[:, axis].max()],
                                   [drawn[:, column].min(), drawn[:, column].max()], atol=0.05)
    report = re.search(r"Remeshed \S+ to (\d+) quads \(target 5000, [\d.]+ s\)", capfd.readouterr().out)
    assert report and int(report[1]) == len(obj.data.polygons)

"""Remesh: Quads: a reconstructed object's triangles become a closed all-quad mesh, made by
Blender's own QuadriFlow, or stay as they were with a phrase saying why."""

from __future__ import annotations

import bpy
import bmesh  # after bpy, which puts it on the path in the bpy wheel
import numpy as np

# Remesh: Quads. The first run's seed is fixed, so the same mesh remeshes the same way every time.
# A run that leaves holes is retried with the next seed and the target scaled by the next nudge
# (the holes tend to come back at the same target whatever the seed, rarely 10% away from it);
# one that misses the face count by more than QUADRIFLOW_RETARGET is rerun once with a corrected
# target. QUADRIFLOW_RUNS at most.
QUADRIFLOW_SEED = 0
QUADRIFLOW_NUDGES = (1.0, 1.1, 0.9, 1.2)
QUADRIFLOW_RETARGET = 0.15
QUADRIFLOW_RUNS = 4
QUADRIFLOW_HOLE_EDGES = 12   # the longest ring around a hole QuadriFlow left that is closed with quads


def remesh_quads(context: bpy.types.Context, obj: bpy.types.Object, target_faces: int) -> str | None:
    """Remesh ``obj``'s mesh into about ``target_faces`` quads with Blender's QuadriFlow.

    Returns None when the result is a closed all-quad mesh, else why not (a phrase), and
    then the object keeps its triangle mesh untouched. Only the mesh data changes, so the
    object keeps its place, material and custom properties. QuadriFlow runs blocking, on
    copies of the mesh; nested in an operator it adds no undo step of its own. It now and
    then leaves small holes: even ones are closed with quads (:func:`close_small_holes`),
    otherwise the run is retried with the next seed and a nudged target. A run that misses
    the face count by more than QUADRIFLOW_RETARGET is rerun once with the target corrected
    by the miss, keeping the closer result. At most QUADRIFLOW_RUNS runs, seconds each."""
    triangles = obj.data
    best: bpy.types.Mesh | None = None
    base, tries, retargeted, reason = float(target_faces), 0, False, None
    for _ in range(QUADRIFLOW_RUNS):
        obj.data = candidate = triangles.copy()
        aim = max(1, round(base * QUADRIFLOW_NUDGES[tries % len(QUADRIFLOW_NUDGES)]))
        reason, retry = _quadriflow(context, obj, aim, QUADRIFLOW_SEED + tries)
        obj.data = triangles
        count = len(candidate.polygons)
        if reason is None and (best is None or abs(count - target_faces) < abs(len(best.polygons) - target_faces)):
            best, candidate = candidate, best
        if candidate is not None:
            bpy.data.meshes.remove(candidate)
        if reason is None:
            if abs(count - target_faces) <= QUADRIFLOW_RETARGET * target_faces or retargeted:
                break
            # The count scales about linearly with the target; a wild miss is not trusted that far.
            base, retargeted = base * min(2.0, max(0.5, target_faces / count)), True
        elif retry:
            tries += 1
        else:
            break
    if best is None:
        return reason
    name = triangles.name
    obj.data = best
    bpy.data.meshes.remove(triangles)
    best.name = name
    return None


def _quadriflow(context: bpy.types.Context, obj: bpy.types.Object, target_faces: int,
                seed: int) -> tuple[str | None, bool]:
    """One QuadriFlow run on ``obj``'s mesh: (why it is no closed quad mesh, or None; whether
    another seed may do better). Called with EXEC it blocks until done."""
    mesh = obj.data
    counts = (len(mesh.vertices), len(mesh.loops), len(mesh.polygons))
    try:
        with context.temp_override(object=obj, active_object=obj, selected_objects=[obj],
                                   selected_editable_objects=[obj]):
            result = bpy.ops.object.quadriflow_remesh(
                "EXEC_DEFAULT", use_mesh_symmetry=False, use_preserve_sharp=False, use_preserve_boundary=False,
                preserve_attributes=False, smooth_normals=True, mode="FACES", target_faces=target_faces, seed=seed)
    except RuntimeError as exc:
        return str(exc).strip().splitlines()[-1].removeprefix("Error: ").rstrip(".") or "it raised an error", False
    if "FINISHED" not in result or (len(mesh.vertices), len(mesh.loops), len(mesh.polygons)) == counts:
        return "it left the mesh unchanged; it needs a manifold mesh whose normals point one way", False
    problem = quad_mesh_problem(mesh)
    if problem is not None and close_small_holes(mesh):
        problem = quad_mesh_problem(mesh)
    return problem, problem is not None


def close_small_holes(mesh: bpy.types.Mesh, most_edges: int = QUADRIFLOW_HOLE_EDGES) -> bool:
    """Close the small holes QuadriFlow now and then leaves in a quad mesh (a ring of 6 to 10
    edges where it placed no quads) with a ladder of quads across each, wound like their
    neighbours; True if it did. It does only when every hole is a simple ring of an even
    number of at most ``most_edges`` edges (an odd ring can't be tiled with quads without
    new vertices), and otherwise returns False with the mesh as it was."""
    mesh_b = bmesh.new()
    try:
        mesh_b.from_mesh(mesh)
        if any(len(edge.link_faces) > 2 for edge in mesh_b.edges):
            return False
        # A boundary edge's one face runs along it a -> b; the face that fills the hole runs b -> a.
        following: dict[bmesh.types.BMVert, tuple[bmesh.types.BMVert, bmesh.types.BMFace]] = {}
        for edge in mesh_b.edges:
            if edge.is_boundary:
                loop = edge.link_loops[0]
                if loop.link_loop_next.vert in following:
                    return False                       # two holes meet at a vertex
                following[loop.link_loop_next.vert] = (loop.vert, loop.face)
        rings = []
        while following:
            start = next(iter(following))
            ring, vert = [], start
            while vert in following:
                ring.append(vert)
                vert, neighbour = following.pop(vert)
            if vert is not start or len(ring) % 2 or len(ring) > most_edges:
                return False
            rings.append((ring, neighbour))
        if not rings:
            return False
        try:
            for ring, neighbour in rings:
                n = len(ring)
                for k in range(n // 2 - 1):
                    mesh_b.faces.new((ring[k], ring[k + 1], ring[n - 2 - k], ring[n - 1 - k]), neighbour)
        except ValueError:                             # such a face exists already: a pocket, not a hole
            return False
        mesh_b.to_mesh(mesh)
        mesh.update()
        return True
    finally:
        mesh_b.free()


def quad_mesh_problem(mesh: bpy.types.Mesh) -> str | None:
    """Why ``mesh`` is not a closed all-quad mesh (a phrase), or None if it is one."""
    if not len(mesh.polygons):
        return "it left no faces"
    sides = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("loop_total", sides)
    if (sides != 4).any():
        return f"it left {int((sides != 4).sum())} faces that are not quads"
    edge_of_loop = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("edge_index", edge_of_loop)
    faces_per_edge = np.bincount(edge_of_loop, minlength=len(mesh.edges))
    if (faces_per_edge != 2).any():
        return f"it left {int((faces_per_edge != 2).sum())} edges that do not join exactly two faces"
    return None

"""Turn the server's vertex and face arrays into a Blender mesh object."""

from __future__ import annotations

import bpy
import numpy as np

SOURCE_PROPERTY = "sketch2mesh_source"
MATERIAL_NAME = "Sketch2Mesh Clay"


def clay_material() -> bpy.types.Material:
    """A plain light-grey material shared by reconstructed meshes."""
    material = bpy.data.materials.get(MATERIAL_NAME)
    if material is None:
        material = bpy.data.materials.new(MATERIAL_NAME)
        material.diffuse_color = (0.8, 0.78, 0.74, 1.0)
        material.roughness = 0.6
    return material


def build_mesh(name: str, vertices: np.ndarray, faces: np.ndarray) -> bpy.types.Mesh:
    """A smooth-shaded triangle mesh from (V, 3) vertices and (F, 3) faces, filled with foreach_set."""
    vertices = np.ascontiguousarray(vertices, np.float32)
    faces = np.ascontiguousarray(faces, np.int32)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), bool))
    mesh.update(calc_edges=True)
    mesh.validate(clean_customdata=False)
    mesh.materials.append(clay_material())
    return mesh


def add_result(context: bpy.types.Context, sketch: bpy.types.Object, vertices: np.ndarray,
               faces: np.ndarray, info: dict | None = None) -> bpy.types.Object:
    """Add the reconstruction of ``sketch`` as a new object, active and the only one selected."""
    name = f"{sketch.name}_mesh"
    obj = bpy.data.objects.new(name, build_mesh(name, vertices, faces))
    obj[SOURCE_PROPERTY] = sketch.name
    if info:
        obj["sketch2mesh_backend"] = str(info.get("backend", ""))
    collection = sketch.users_collection[0] if sketch.users_collection else context.scene.collection
    collection.objects.link(obj)
    select_only(context, obj)
    return obj


def select_only(context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """Make ``obj`` the active object and the only one selected, as a newly added object is."""
    for other in context.view_layer.objects:
        if other.select_get():
            other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj

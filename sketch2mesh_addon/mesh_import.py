"""Meshes in and out of Blender: the server's arrays become objects, objects become
world-space triangles for Fit to strokes, and fitted vertices land in a shape key.

A reconstructed mesh points to its sketch (``object.sketch2mesh.sketch``, see
:mod:`.props`), so renaming the sketch keeps the link. Files from before that pointer
name the sketch in the ``sketch2mesh_source`` string instead; it is still read, and
replaced by the pointer the first time Fit to strokes finds the sketch through it."""

from __future__ import annotations

import bpy
import numpy as np

from . import strokes

SOURCE_PROPERTY = "sketch2mesh_source"   # older files' link: the sketch's name
FIT_PROPERTY = "sketch2mesh_fit"
NOTES_PROPERTY = "sketch2mesh_notes"
FITTED_KEY = "Fitted"
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
    """Add the reconstruction of ``sketch`` as a new object, active and the only one selected.

    The server's ``info`` (its result summary) leaves the backend and the notes (what it
    did to the sketch, e.g. inflating a lone view) on the object, for the panel."""
    name = f"{sketch.name}_mesh"
    obj = bpy.data.objects.new(name, build_mesh(name, vertices, faces))
    link_sketch(obj, sketch)
    if info:
        obj["sketch2mesh_backend"] = str(info.get("backend", ""))
        if info.get("notes"):
            obj[NOTES_PROPERTY] = [str(note) for note in info["notes"]]
    collection = sketch.users_collection[0] if sketch.users_collection else context.scene.collection
    collection.objects.link(obj)
    select_only(context, obj)
    return obj


def notes(obj: bpy.types.Object) -> list[str]:
    """The server's notes on how ``obj`` was reconstructed (empty if none)."""
    return [str(note) for note in obj.get(NOTES_PROPERTY, [])]


def select_only(context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """Make ``obj`` the active object and the only one selected, as a newly added object is."""
    for other in context.view_layer.objects:
        if other.select_get():
            other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj


def link_sketch(obj: bpy.types.Object, sketch: bpy.types.Object) -> None:
    """Point ``obj`` to the sketch it was reconstructed from, dropping an older file's name link."""
    obj.sketch2mesh.sketch = sketch
    if SOURCE_PROPERTY in obj:
        del obj[SOURCE_PROPERTY]


def source_sketch(obj: bpy.types.Object) -> bpy.types.Object | None:
    """The sketch ``obj`` was reconstructed from, if it is still in a scene: the one it
    points to, else (an older file) the one its name link names. Reading only, so the
    panel may call it while it draws."""
    settings = getattr(obj, "sketch2mesh", None)
    pointed = settings.sketch if settings is not None else None
    # A sketch deleted from the scene lives on while the pointer holds it: it no longer counts.
    source = pointed if pointed is not None else bpy.data.objects.get(str(obj.get(SOURCE_PROPERTY, "")))
    return source if source is not None and strokes.is_sketch(source) and source.users_scene else None


def fit_sketch(context: bpy.types.Context, obj: bpy.types.Object, name: str = "") -> bpy.types.Object | None:
    """The sketch to fit ``obj`` to: the one named, else the one it was reconstructed from
    (an older file's name link is upgraded to the pointer here), else the one picked in
    the Refine panel."""
    named = bpy.data.objects.get(name) if name else None
    if named is not None and strokes.is_sketch(named):
        return named
    source = source_sketch(obj)
    if source is not None:
        if SOURCE_PROPERTY in obj:
            link_sketch(obj, source)
        return source
    picked = getattr(getattr(context.scene, "sketch2mesh", None), "fit_sketch", None)
    return picked if picked is not None and strokes.is_sketch(picked) else None


def world_triangles(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """The mesh's basis shape in world space (V, 3) float32 and its triangulated faces (T, 3) int32.

    Vertices keep Blender's order, so fitted positions map straight back onto them."""
    mesh = obj.data
    source = mesh.shape_keys.reference_key.data if mesh.shape_keys else mesh.vertices
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    source.foreach_get("co", co)
    matrix = np.array(obj.matrix_world, np.float64)
    world = co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
    mesh.calc_loop_triangles()
    triangles = np.empty(len(mesh.loop_triangles) * 3, np.int32)
    mesh.loop_triangles.foreach_get("vertices", triangles)
    return world.astype(np.float32), triangles.reshape(-1, 3)


class FittedShape:
    """The "Fitted" shape key of one object: shown (and overwritten) while a fit runs, put
    back as it was if the fit fails. The basis is never touched."""

    def __init__(self, obj: bpy.types.Object):
        self.name = obj.name
        keys = obj.data.shape_keys
        self.had_keys = keys is not None
        previous = keys.key_blocks.get(FITTED_KEY) if keys else None
        self.previous = None
        if previous is not None:
            co = np.empty(len(previous.data) * 3, np.float32)
            previous.data.foreach_get("co", co)
            self.previous = (co, previous.value)
        self.inverse = np.linalg.inv(np.array(obj.matrix_world, np.float64))

    @property
    def obj(self) -> bpy.types.Object | None:
        return bpy.data.objects.get(self.name)

    def alive(self) -> bool:
        return self.obj is not None and self.obj.type == "MESH"

    def show(self, world_vertices: np.ndarray) -> None:
        """Write world-space vertices into the "Fitted" key (made if missing) at value 1."""
        obj = self.obj
        if obj.data.shape_keys is None:
            obj.shape_key_add(name="Basis", from_mix=False)
        key = obj.data.shape_keys.key_blocks.get(FITTED_KEY) or obj.shape_key_add(name=FITTED_KEY, from_mix=False)
        local = np.asarray(world_vertices, np.float64) @ self.inverse[:3, :3].T + self.inverse[:3, 3]
        key.data.foreach_set("co", local.astype(np.float32).ravel())
        key.value = 1.0
        obj.active_shape_key_index = list(obj.data.shape_keys.key_blocks).index(key)
        obj.data.update()

    def restore(self) -> None:
        """Put the shape keys back as they were before the fit."""
        obj = self.obj
        keys = obj.data.shape_keys
        key = keys.key_blocks.get(FITTED_KEY) if keys else None
        if key is None:
            return
        if self.previous is not None:
            key.data.foreach_set("co", self.previous[0])
            key.value = self.previous[1]
        elif self.had_keys:
            obj.shape_key_remove(key)
        else:
            obj.shape_key_clear()
        obj.data.update()


def store_fit_report(obj: bpy.types.Object, fit: dict) -> None:
    """Keep a fit's silhouette IoUs on the object for the Refine panel."""
    obj[FIT_PROPERTY] = {
        "iou_before": {view: float(value) for view, value in (fit.get("iou_before") or {}).items()},
        "iou_after": {view: float(value) for view, value in (fit.get("iou_after") or {}).items()},
        "flipped_faces": int(fit.get("flipped_faces", 0)),
        "iterations": int(fit.get("iterations", 0)),
        "cancelled": bool(fit.get("cancelled", False)),
        "already_matched": bool(fit.get("already_matched", False)),
    }

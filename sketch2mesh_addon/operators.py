"""The sketch and mesh operators: New Sketch, Sketch View, Reconstruct from Sketch and
Fit to Strokes.

They are thin bpy shells. Reconstruct and Fit run as jobs (:class:`job_operator.JobOperator`:
a worker thread polled from a modal timer in the UI, synchronous from scripts); what
they send is checked by :mod:`.protocol` first, and what comes back becomes an object or
a shape key through :mod:`.mesh_import`. The server's own operators are in
:mod:`.server_operators`; the Reconstruct choices in :mod:`.props`.
"""

from __future__ import annotations

import time

import bpy
import numpy as np
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import client, jobs, mesh_import, preferences, protocol, remesh, strokes
from .job_operator import JobOperator
from .props import (backend_property, detail_property, remesh_property, roundness_property,
                    target_faces_property)

VIEWS = (
    ("FRONT", "Front", "Front orthographic view, drawing on the Front layer"),
    ("SIDE", "Side", "Right orthographic view, drawing on the Side layer"),
    ("TOP", "Top", "Top orthographic view, drawing on the Top layer"),
)
VIEW_AXIS = {"FRONT": "FRONT", "SIDE": "RIGHT", "TOP": "TOP"}  # view3d.view_axis types
DRAW_PLANE = {"FRONT": "AXIS_Y", "SIDE": "AXIS_X", "TOP": "AXIS_Z"}  # Grease Pencil drawing plane


def _view3d_override(context: bpy.types.Context) -> dict | None:
    """Context members for view3d operators: this area if it is a 3D view, else the first one."""
    areas = [context.area] if context.area is not None and context.area.type == "VIEW_3D" else []
    areas += [a for a in (context.screen.areas if context.screen else []) if a.type == "VIEW_3D"]
    for area in areas:
        for region in area.regions:
            if region.type == "WINDOW":
                return {"area": area, "region": region}
    return None


def _set_view(context: bpy.types.Context, view: str) -> bool:
    """Switch a 3D view to ``view`` (orthographic) and set the drawing plane; False without a 3D view."""
    override = _view3d_override(context)
    if override is None:
        return False
    with context.temp_override(**override):
        bpy.ops.view3d.view_axis(type=VIEW_AXIS[view])
    override["area"].spaces.active.region_3d.view_perspective = "ORTHO"
    tool_settings = context.scene.tool_settings
    tool_settings.gpencil_sculpt.lock_axis = DRAW_PLANE[view]
    tool_settings.gpencil_stroke_placement_view3d = "ORIGIN"
    return True


def _set_active_layer(obj: bpy.types.Object, view: str) -> None:
    layer = strokes.find_layer(obj, strokes.LAYERS[view.lower()])
    if layer is not None:
        obj.data.layers.active = layer


def _enter_draw_mode(context: bpy.types.Context) -> None:
    mode = "PAINT_GREASE_PENCIL" if strokes.gp_v3() else "PAINT_GPENCIL"
    if context.mode != mode:
        bpy.ops.object.mode_set(mode=mode)


def _to_object_mode(context: bpy.types.Context) -> None:
    if context.mode != "OBJECT" and context.view_layer.objects.active is not None:
        bpy.ops.object.mode_set(mode="OBJECT")


class SKETCH2MESH_OT_new_sketch(bpy.types.Operator):
    """Add a Grease Pencil sketch with Front, Side and Top layers, ready to draw"""

    bl_idname = "sketch2mesh.new_sketch"
    bl_label = "New Sketch"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        _to_object_mode(context)
        obj = strokes.new_sketch(context.collection or context.scene.collection, "Sketch")
        obj.location = context.scene.cursor.location if not bpy.app.background else (0.0, 0.0, 0.0)
        mesh_import.select_only(context, obj)
        _set_active_layer(obj, "FRONT")
        if not bpy.app.background and _set_view(context, "FRONT"):
            _enter_draw_mode(context)
        return {"FINISHED"}


class SKETCH2MESH_OT_view(bpy.types.Operator):
    """Look at the sketch from this side (orthographic) and draw on the matching layer"""

    bl_idname = "sketch2mesh.view"
    bl_label = "Sketch View"
    bl_options = {"REGISTER"}

    view: EnumProperty(name="View", items=VIEWS, default="FRONT")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not strokes.is_sketch(context.active_object):
            cls.poll_message_set("Select a sketch (a Grease Pencil object) first")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = context.active_object
        if strokes.find_layer(obj, strokes.LAYERS[self.view.lower()]) is None:
            obj.data.layers.new(strokes.LAYERS[self.view.lower()])
        _set_active_layer(obj, self.view)
        if not _set_view(context, self.view):
            self.report({"WARNING"}, "No 3D view to switch; the layer was made active.")
        return {"FINISHED"}


class SKETCH2MESH_OT_reconstruct(JobOperator, bpy.types.Operator):
    """Build a watertight mesh from the active sketch's Front, Side and Top strokes; Front or Side alone is inflated"""

    bl_idname = "sketch2mesh.reconstruct"
    bl_label = "Reconstruct from Sketch"
    bl_options = {"REGISTER", "UNDO"}
    job_title = "Reconstruct"

    backend: backend_property()
    roundness: roundness_property()
    detail: detail_property()
    refine_iterations: IntProperty(name="Refine Iterations", description="Fit to strokes iterations after "
                                   "reconstruction (0 skips)", default=0, min=0, max=10_000)
    remesh: remesh_property()
    target_faces: target_faces_property()

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not strokes.is_sketch(context.active_object):
            cls.poll_message_set("Make a sketch (a Grease Pencil object) active first")
            return False
        return True

    def prepare(self, context: bpy.types.Context) -> jobs.Work | None:
        obj = context.active_object
        context.view_layer.update()
        sketch = strokes.read_sketch(obj)
        try:
            protocol.check_strokes(sketch)
        except protocol.ProtocolError as exc:
            self.report({"ERROR"}, exc.message)
            return None
        self._sketch_name = obj.name
        self._unseen_centre = strokes.unseen_centre(obj, sketch)
        return jobs.reconstruct_work(preferences.settings(context), sketch, self.backend.lower(),
                                     self.detail.lower(), self.refine_iterations, self.roundness)

    def finish(self, context: bpy.types.Context, result: client.ReconstructResult) -> set[str]:
        sketch = bpy.data.objects.get(self._sketch_name)
        if sketch is None:
            self.report({"ERROR"}, f"The sketch {self._sketch_name!r} was deleted while it was being reconstructed.")
            return {"CANCELLED"}
        _to_object_mode(context)
        vertices = result.vertices + self._unseen_centre.astype(np.float32)
        obj = mesh_import.add_result(context, sketch, vertices, result.faces, result.info)
        if result.info.get("fit"):
            mesh_import.store_fit_report(obj, result.info["fit"])
        seconds = float((result.info.get("timings_s") or {}).get("total", 0.0))
        self.report({"INFO"}, f"Reconstructed {obj.name}: {len(result.vertices)} vertices, "
                              f"{len(result.faces)} faces ({result.info.get('backend', '?')}, {seconds:.1f} s).")
        for note in mesh_import.notes(obj):
            self.report({"INFO"}, note)
        if self.remesh == "QUADS":
            self.remesh_quads(context, obj)
        return {"FINISHED"}

    def remesh_quads(self, context: bpy.types.Context, obj: bpy.types.Object) -> None:
        """Remesh the new object into quads, or keep its triangles and say why QuadriFlow failed.
        QuadriFlow blocks Blender for seconds, so the cursor waits meanwhile."""
        started = time.perf_counter()
        if context.window is not None:
            context.window.cursor_set("WAIT")
        try:
            reason = remesh.remesh_quads(context, obj, self.target_faces)
        finally:
            if context.window is not None:
                context.window.cursor_set("DEFAULT")
        if reason is not None:
            self.report({"WARNING"}, f"QuadriFlow could not remesh {obj.name} to quads ({reason}); "
                                     "kept the triangle mesh.")
            return
        self.report({"INFO"}, f"Remeshed {obj.name} to {len(obj.data.polygons)} quads "
                              f"(target {self.target_faces}, {time.perf_counter() - started:.1f} s).")


class SKETCH2MESH_OT_fit_strokes(JobOperator, bpy.types.Operator):
    """Fit the active mesh's silhouettes to the strokes of its sketch, into the shape key Fitted"""

    bl_idname = "sketch2mesh.fit_strokes"
    bl_label = "Fit to Strokes"
    bl_options = {"REGISTER", "UNDO"}
    job_title = "Fit to strokes"

    iterations: IntProperty(name="Iterations", description="Most optimisation steps (it stops early once converged)",
                            default=200, min=1, max=10_000)
    sketch: StringProperty(name="Sketch", description="Grease Pencil object to fit to (default: the one the mesh "
                           "was reconstructed from, then the one picked in the Refine panel)", default="")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            cls.poll_message_set("Make a mesh active first")
            return False
        return True

    def prepare(self, context: bpy.types.Context) -> jobs.Work | None:
        """Fit the active mesh's basis, triangulated in world space, to the sketch's strokes."""
        obj = context.active_object
        _to_object_mode(context)
        sketch = mesh_import.fit_sketch(context, obj, self.sketch)
        if sketch is None:
            self.report({"ERROR"}, f"{obj.name} has no sketch to fit to: reconstruct it from a sketch, or pick "
                                   "the sketch in the Refine panel.")
            return None
        context.view_layer.update()
        sketch_strokes = strokes.read_sketch(sketch)
        vertices, faces = mesh_import.world_triangles(obj)
        try:
            protocol.check_strokes(sketch_strokes)
            protocol.check_mesh(vertices, faces)
        except protocol.ProtocolError as exc:
            self.report({"ERROR"}, exc.message)
            return None
        defects = protocol.mesh_defects(faces)
        if defects:
            self.report({"WARNING"}, defects)
        self._object_name, self._preview = obj.name, jobs.Latest()
        self._shape = mesh_import.FittedShape(obj)
        return jobs.fit_work(preferences.settings(context), sketch_strokes, vertices, faces, self.iterations,
                             self._preview)

    def show_live(self, context: bpy.types.Context, vertices: np.ndarray) -> None:
        if self._shape.alive():
            self._shape.show(vertices)

    def abandon(self, context: bpy.types.Context) -> None:
        if self._shape.alive():
            self._shape.restore()

    def finish(self, context: bpy.types.Context, result: client.FitResult) -> set[str]:
        if not self._shape.alive():
            self.report({"ERROR"}, f"The mesh {self._object_name!r} was deleted while it was being fitted.")
            return {"CANCELLED"}
        self._shape.show(result.vertices)
        fit = result.info.get("fit") or {}
        mesh_import.store_fit_report(self._shape.obj, fit)
        for warning in result.info.get("warnings") or []:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Fitted {self._object_name} into shape key \"{mesh_import.FITTED_KEY}\" "
                              f"({'cancelled, best so far' if fit.get('cancelled') else 'done'}): "
                              f"{protocol.describe_fit(fit)}.")
        return {"FINISHED"}


CLASSES = (
    SKETCH2MESH_OT_new_sketch,
    SKETCH2MESH_OT_view,
    SKETCH2MESH_OT_reconstruct,
    SKETCH2MESH_OT_fit_strokes,
)

"""The add-on's operators.

Invoked from the UI, the operators that talk to the server run a :class:`jobs.Job`
and poll it from a modal timer, so Blender never blocks; Esc or the panel's Cancel
button cancels. What each tick or key press does is decided by a bpy-free
:class:`job_flow.JobFlow`; the operators only apply its steps. Executed from a script
or in background mode they run synchronously and report errors, which bpy turns into
a RuntimeError.
"""

from __future__ import annotations

import threading
import time

import bpy
import numpy as np
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

from . import (client, job_flow, jobs, mesh_import, preferences, protocol, remesh, server_process, server_setup,
               strokes)

BACKENDS = (
    ("LEARNED", "Learned", "The trained network refines the visual hull: rounder cross-sections, cavities and holes"),
    ("ROUND", "Round", "Rounded geometric backend: no network; the drawn outlines kept, cross-sections rounded "
                       "as Roundness sets"),
    ("HULL", "Hull", "Geometric visual-hull backend: no network; boxy cross-sections, cavities filled"),
)
DEFAULT_BACKEND = protocol.DEFAULT_BACKEND.upper()
DETAILS = (
    ("LOW", "Low", "Coarse and fast"),
    ("MEDIUM", "Medium", "Balanced"),
    ("HIGH", "High", "Fine and slower"),
)
VIEWS = (
    ("FRONT", "Front", "Front orthographic view, drawing on the Front layer"),
    ("SIDE", "Side", "Right orthographic view, drawing on the Side layer"),
    ("TOP", "Top", "Top orthographic view, drawing on the Top layer"),
)
VIEW_AXIS = {"FRONT": "FRONT", "SIDE": "RIGHT", "TOP": "TOP"}  # view3d.view_axis types
DRAW_PLANE = {"FRONT": "AXIS_Y", "SIDE": "AXIS_X", "TOP": "AXIS_Z"}  # Grease Pencil drawing plane
TIMER_S = 0.1
SETUP_TITLE = "Set up server"


def roundness_property() -> FloatProperty:
    """The round backend's Roundness slider, for the operator and the panel alike."""
    lo, hi = protocol.ROUNDNESS_RANGE
    return FloatProperty(name="Roundness", description="Round backend: cross-sections from the hull's rectangles "
                         "(0) to inscribed ellipses (1)", default=protocol.DEFAULT_ROUNDNESS, min=lo, max=hi,
                         subtype="FACTOR")


REMESH = (
    ("NONE", "None", "Keep the reconstruction's triangle mesh"),
    ("QUADS", "Quads", "Remesh the result into quads with Blender's QuadriFlow (Blender waits while it runs; "
                       "the triangle mesh is kept if it fails)"),
)


def remesh_property() -> EnumProperty:
    """Reconstruct's Remesh choice, for the operator and the panel alike."""
    return EnumProperty(name="Remesh", description="What to make of the reconstructed triangle mesh", items=REMESH,
                        default="NONE")


def target_faces_property() -> IntProperty:
    """About how many quads Remesh: Quads aims for, for the operator and the panel alike."""
    return IntProperty(name="Target Faces", description="Remesh Quads: about how many quads QuadriFlow aims for "
                       "(more is finer and slower)", default=5000, min=100, max=200_000, soft_max=50_000)


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


def _tag_redraw(context: bpy.types.Context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


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


class JobOperator:
    """Shared machinery of the operators that run a job: ``prepare`` checks the input and
    returns the work; ``execute`` (scripts, background mode) runs it here, ``invoke`` (the
    UI) runs it in a worker thread that a :class:`job_flow.JobFlow` polls from a modal
    timer; ``finish`` uses the result. The flow decides; these methods only apply its steps."""

    job_title = ""
    _timer = None
    _flow: job_flow.JobFlow | None = None
    _preview: jobs.Latest | None = None

    def prepare(self, context: bpy.types.Context) -> jobs.Work | None:
        """The job's work, or None after reporting why the input is unusable."""
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        work = self.prepare(context)
        if work is None:
            return {"CANCELLED"}
        try:
            result = self.run_sync(work)
        except (client.ServerError, server_process.ServerStartError, server_setup.SetupError, OSError) as exc:
            self.abandon(context)
            self.report({"ERROR"}, jobs.user_message(exc))
            return {"CANCELLED"}
        return self.finish(context, result)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background:
            return self.execute(context)
        work = self.prepare(context)
        if work is None:
            return {"CANCELLED"}
        return self.start_job(context, self.job_title, work)

    def start_job(self, context: bpy.types.Context, title: str, work: jobs.Work) -> set[str]:
        try:
            job = jobs.submit(title, work)
        except RuntimeError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._flow = job_flow.JobFlow(job, time.monotonic, self._preview)
        self._timer = context.window_manager.event_timer_add(TIMER_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def run_sync(self, work: jobs.Work):
        """Run ``work`` on this thread; progress goes to the console in background mode."""
        def progress(message: str, fraction: float) -> None:
            if bpy.app.background:
                print(f"[sketch2mesh {fraction:4.0%}] {message}", flush=True)

        return work(progress, threading.Event())

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "TIMER":
            flow_event = job_flow.Event.TICK
        elif event.type == "ESC" and event.value == "PRESS":
            flow_event = job_flow.Event.ESC
        else:
            flow_event = job_flow.Event.OTHER
        return self.apply_step(context, self._flow.handle(flow_event))

    def cancel(self, context: bpy.types.Context) -> None:
        self.apply_step(context, self._flow.abort())

    def apply_step(self, context: bpy.types.Context, step: job_flow.Step) -> set[str]:
        """Do what the flow said, in the order :class:`job_flow.Step` gives."""
        if step.live is not None:
            self.show_live(context, step.live)
        if step.status is not None:
            if context.workspace is not None:
                context.workspace.status_text_set(step.status)
            _tag_redraw(context)
        if step.ended:
            self._end(context)
        if step.restore:
            self.abandon(context)
        if step.report is not None:
            self.report({step.report.level}, step.report.message)
        if step.result is not None:
            return self.finish(context, step.result)
        return {step.returns}

    def show_live(self, context: bpy.types.Context, vertices: np.ndarray) -> None:
        """Show intermediate vertices the job streamed (Fit to strokes does)."""

    def abandon(self, context: bpy.types.Context) -> None:
        """Undo anything shown while the job ran, when it ends without a result."""

    def _end(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        _tag_redraw(context)

    def finish(self, context: bpy.types.Context, result) -> set[str]:
        raise NotImplementedError


class SKETCH2MESH_OT_reconstruct(JobOperator, bpy.types.Operator):
    """Build a watertight mesh from the active sketch's Front, Side and Top strokes; Front or Side alone is inflated"""

    bl_idname = "sketch2mesh.reconstruct"
    bl_label = "Reconstruct from Sketch"
    bl_options = {"REGISTER", "UNDO"}
    job_title = "Reconstruct"

    backend: EnumProperty(name="Backend", items=BACKENDS, default=DEFAULT_BACKEND)
    roundness: roundness_property()
    detail: EnumProperty(name="Detail", items=DETAILS, default="MEDIUM")
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


class SKETCH2MESH_OT_server_start(JobOperator, bpy.types.Operator):
    """Start the Sketch2Mesh server from the Server Python preference (unless one already answers)"""

    bl_idname = "sketch2mesh.server_start"
    bl_label = "Start Server"
    bl_options = {"REGISTER"}
    job_title = "Start server"

    def prepare(self, context: bpy.types.Context) -> jobs.Work:
        return jobs.start_server_work(preferences.settings(context))

    def finish(self, context: bpy.types.Context, connection: server_process.Connection) -> set[str]:
        device = connection.status.get("device", "?")
        self.report({"INFO"}, f"Sketch2Mesh server ready at {connection.host}:{connection.port} (device {device}).")
        return {"FINISHED"}


class SKETCH2MESH_OT_setup_server(JobOperator, bpy.types.Operator):
    """Create or repair the server's Python environment from what the extension carries (about 1 GB to download), then check that its server answers"""

    bl_idname = "sketch2mesh.setup_server"
    bl_label = "Set Up Server"
    bl_options = {"REGISTER"}
    job_title = SETUP_TITLE

    directory: StringProperty(name="Directory", description="Where to create the environment (default: the "
                              "extension's user folder)", default="", subtype="DIR_PATH", options={"SKIP_SAVE"})

    def prepare(self, context: bpy.types.Context) -> jobs.Work | None:
        try:
            plan = preferences.setup_plan(context, self.directory)
        except server_setup.SetupError as exc:
            self.report({"ERROR"}, exc.message)
            return None
        if plan.flavour == "cuda" and not plan.wheelhouse and not server_setup.nvidia_gpu_cached():
            self.report({"ERROR"}, "No NVIDIA GPU was found: choose CPU under Packages in the add-on's preferences, "
                                   "then click Set up server again.")
            return None
        prefs = preferences.preferences(context)
        python = server_setup.env_python(plan.env_dir)
        if prefs is not None and prefs.server_python and bpy.path.abspath(prefs.server_python) == str(python):
            prefs.server_python = ""      # filled again once the environment answers
        return jobs.setup_work(plan)

    def finish(self, context: bpy.types.Context, ready: server_setup.Ready) -> set[str]:
        prefs = preferences.preferences(context)
        if prefs is not None:
            prefs.server_python = ready.python
        self.report({"INFO"}, f"Sketch2Mesh server {ready.label()}: Server Python is {ready.python}.")
        return {"FINISHED"}


class SKETCH2MESH_OT_server_stop(bpy.types.Operator):
    """Stop the Sketch2Mesh server that Blender started"""

    bl_idname = "sketch2mesh.server_stop"
    bl_label = "Stop Server"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        jobs.cancel_current()
        if server_process.stop():
            self.report({"INFO"}, "Sketch2Mesh server stopped.")
        else:
            self.report({"INFO"}, "No Sketch2Mesh server started by Blender is running.")
        return {"FINISHED"}


class SKETCH2MESH_OT_cancel(bpy.types.Operator):
    """Cancel the running Sketch2Mesh job"""

    bl_idname = "sketch2mesh.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return jobs.current() is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        jobs.cancel_current()
        return {"FINISHED"}


CLASSES = (
    SKETCH2MESH_OT_new_sketch,
    SKETCH2MESH_OT_view,
    SKETCH2MESH_OT_reconstruct,
    SKETCH2MESH_OT_fit_strokes,
    SKETCH2MESH_OT_server_start,
    SKETCH2MESH_OT_setup_server,
    SKETCH2MESH_OT_server_stop,
    SKETCH2MESH_OT_cancel,
)

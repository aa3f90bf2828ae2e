"""The "Sketch2Mesh" tab in the 3D view's sidebar: Server, Sketch, Reconstruct, Refine.

The panels draw the scene's choices (:mod:`.props`), the server's state and the active
object's notes and last fit; every sentence about a fit comes from
:func:`protocol.fit_report`, the wording the add-on's messages and the command line share."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import bpy

from . import job_flow, jobs, mesh_import, preferences, protocol, server_process, server_setup, strokes
from .server_operators import SETUP_TITLE


def draw_running_job(layout: bpy.types.UILayout) -> bool:
    """The running job's progress bar and a Cancel button, if a job runs; True then."""
    job = jobs.current()
    if job is None:
        return False
    layout.progress(factor=job.fraction, type="BAR", text=job_flow.progress_text(job))
    layout.operator("sketch2mesh.cancel", icon="CANCEL")
    return True


def server_state(context: bpy.types.Context) -> tuple[str, str]:
    """The server environment at a glance, as (text, icon): being set up, ready (and on
    what), the artist's own Server Python, or not set up."""
    job = jobs.current()
    if job is not None and job.title == SETUP_TITLE:
        return f"setting up… {job.fraction:.0%}", "SORTTIME"
    prefs = preferences.preferences(context)
    own = (prefs.server_python if prefs is not None else "") or os.environ.get(preferences.SERVER_PYTHON_ENV, "")
    ready = server_setup.read_ready(preferences.env_dir())
    if own and (ready is None or Path(bpy.path.abspath(own)) != Path(ready.python)):
        return f"own environment: {own}", "CONSOLE"
    if ready is not None and ready.stamp != _carried_stamp():
        return f"{ready.label()}, from an older extension: click Repair", "CHECKMARK"
    if ready is not None:
        return ready.label(), "CHECKMARK"
    return f"not set up ({server_setup.DOWNLOAD_SIZE} to download)", "ERROR"


def _carried_stamp() -> str:
    """The stamp of the server this add-on carries ("" when it carries none)."""
    try:
        return server_setup.source_stamp(preferences.carried_source())
    except (server_setup.SetupError, OSError):
        return ""


def draw_server_state(layout: bpy.types.UILayout, context: bpy.types.Context, setup_button: bool = True) -> None:
    """The environment's state; while it is set up, progress and Cancel; when it is not
    ready, the Set up button; after a failure, its sentence and pip's last lines."""
    text, icon = server_state(context)
    job = jobs.current()
    if job is not None and job.title == SETUP_TITLE:
        layout.progress(factor=job.fraction, type="BAR", text=text)
        layout.label(text=job_flow.progress_text(job))
        layout.operator("sketch2mesh.cancel", icon="CANCEL")
        return
    row = layout.row()
    row.label(text=text, icon=icon)
    if setup_button:
        row.operator("sketch2mesh.setup_server", text="Repair" if icon == "CHECKMARK" else "Set up",
                     icon="FILE_REFRESH" if icon == "CHECKMARK" else "IMPORT")
    failure = server_setup.last_failure
    if failure is not None and icon != "CHECKMARK":
        box = layout.box()
        for i, line in enumerate(textwrap.wrap(failure.message, NOTE_CHARACTERS + 24)):
            box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
        for line in failure.details.splitlines():
            box.label(text=line[:120])


NOTE_CHARACTERS = 36   # characters per line of a note when the sidebar's width is unknown
CHARACTER_PX = 7.0     # about one character's width in the sidebar, in pixels at UI scale 1


def sidebar_characters(context: bpy.types.Context) -> int:
    """About how many characters fit on one line of the sidebar (NOTE_CHARACTERS when its width is unknown)."""
    region = getattr(context, "region", None)
    if region is not None and region.width > 0:
        return max(16, int(region.width / (CHARACTER_PX * context.preferences.system.ui_scale)) - 4)
    return NOTE_CHARACTERS


def draw_notes(layout: bpy.types.UILayout, context: bpy.types.Context, obj: bpy.types.Object | None) -> None:
    """The server's notes on how ``obj`` was reconstructed (e.g. that a second view gives a
    truer shape), wrapped to the sidebar's width, in a box."""
    notes = mesh_import.notes(obj) if obj is not None else []
    if not notes:
        return
    width = sidebar_characters(context)
    box = layout.box()
    for note in notes:
        for i, line in enumerate(textwrap.wrap(note, width)):
            box.label(text=line, icon="INFO" if i == 0 else "BLANK1")


class Sketch2MeshPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Sketch2Mesh"


class SKETCH2MESH_PT_server(Sketch2MeshPanel, bpy.types.Panel):
    bl_idname = "SKETCH2MESH_PT_server"
    bl_label = "Server"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        draw_server_state(layout, context)
        layout.label(text=server_process.describe(preferences.settings(context)))
        row = layout.row(align=True)
        row.operator("sketch2mesh.server_start", text="Start", icon="PLAY")
        row.operator("sketch2mesh.server_stop", text="Stop", icon="SNAP_FACE")


class SKETCH2MESH_PT_sketch(Sketch2MeshPanel, bpy.types.Panel):
    bl_idname = "SKETCH2MESH_PT_sketch"
    bl_label = "Sketch"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.operator("sketch2mesh.new_sketch", icon="GREASEPENCIL")
        row = layout.row(align=True)
        for view, label, _ in (("FRONT", "Front", ""), ("SIDE", "Side", ""), ("TOP", "Top", "")):
            row.operator("sketch2mesh.view", text=label).view = view
        if not strokes.is_sketch(context.active_object):
            layout.label(text="No sketch active", icon="INFO")


class SKETCH2MESH_PT_reconstruct(Sketch2MeshPanel, bpy.types.Panel):
    bl_idname = "SKETCH2MESH_PT_reconstruct"
    bl_label = "Reconstruct"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        props = context.scene.sketch2mesh
        layout.prop(props, "backend")
        row = layout.row()
        row.active = props.backend == "ROUND"   # shown greyed out for the backends that ignore it
        row.prop(props, "roundness", slider=True)
        layout.prop(props, "detail")
        row = layout.row()
        row.label(text="Remesh")
        row.prop(props, "remesh", expand=True)
        row = layout.row()
        row.active = props.remesh == "QUADS"   # greyed out while Remesh is None
        row.prop(props, "target_faces")
        if not draw_running_job(layout):
            op = layout.operator("sketch2mesh.reconstruct", text="Reconstruct from Sketch", icon="MESH_MONKEY")
            op.backend, op.roundness, op.detail = props.backend, props.roundness, props.detail
            op.remesh, op.target_faces = props.remesh, props.target_faces
        draw_notes(layout, context, context.active_object)


class SKETCH2MESH_PT_refine(Sketch2MeshPanel, bpy.types.Panel):
    bl_idname = "SKETCH2MESH_PT_refine"
    bl_label = "Refine"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        props = context.scene.sketch2mesh
        obj = context.active_object
        source = mesh_import.source_sketch(obj) if obj is not None else None
        if source is not None:
            layout.label(text=f"Sketch: {source.name}", icon="GREASEPENCIL")
        else:
            layout.prop(props, "fit_sketch")
        layout.prop(props, "fit_iterations")
        if not draw_running_job(layout):
            layout.operator("sketch2mesh.fit_strokes", icon="MOD_SHRINKWRAP").iterations = props.fit_iterations
        fit = obj.get(mesh_import.FIT_PROPERTY) if obj is not None else None
        if fit:
            draw_fit_report(layout, context, fit.to_dict())


def draw_fit_report(layout: bpy.types.UILayout, context: bpy.types.Context, fit: dict) -> None:
    """The last fit's report, in the protocol's words, wrapped to the sidebar's width in a box."""
    box = layout.box()
    box.label(text="Last fit" + (" (cancelled, best so far)" if fit.get("cancelled") else ""), icon="MOD_SHRINKWRAP")
    width = sidebar_characters(context)
    for part in protocol.fit_report(fit):
        for line in textwrap.wrap(part[:1].upper() + part[1:], width):
            box.label(text=line)


CLASSES = (
    SKETCH2MESH_PT_server,
    SKETCH2MESH_PT_sketch,
    SKETCH2MESH_PT_reconstruct,
    SKETCH2MESH_PT_refine,
)

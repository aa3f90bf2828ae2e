"""The operators that look after the model server: start it, set up its environment, stop
it, and cancel the running job.

Start and Set up run as jobs (:class:`job_operator.JobOperator`), so Blender stays
responsive while a server starts or pip installs; Set up's job title is the one the
panel and the preferences recognise it by.
"""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from . import jobs, preferences, server_process, server_setup
from .job_operator import JobOperator

SETUP_TITLE = "Set up server"


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
    SKETCH2MESH_OT_server_start,
    SKETCH2MESH_OT_setup_server,
    SKETCH2MESH_OT_server_stop,
    SKETCH2MESH_OT_cancel,
)

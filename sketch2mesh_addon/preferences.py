"""Add-on preferences: where the server's Python is and how to reach the server."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import protocol
from .server_process import Settings

SERVER_PYTHON_ENV = "SKETCH2MESH_SERVER_PYTHON"
ADDON_ID = __package__  # "sketch2mesh_addon" from a source checkout, "bl_ext.<repo>.sketch2mesh" as an extension

DEVICES = (
    ("AUTO", "Auto", "CUDA if the server finds a GPU, else CPU"),
    ("CPU", "CPU", "Always run on the CPU"),
    ("CUDA", "CUDA", "Run on an NVIDIA GPU"),
)


class Sketch2MeshPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    server_python: StringProperty(
        name="Server Python",
        description="Python interpreter of the Sketch2Mesh server environment (the repository's .venv)",
        subtype="FILE_PATH",
        default=os.environ.get(SERVER_PYTHON_ENV, ""),
    )
    host: StringProperty(name="Host", description="Loopback address of the server", default=protocol.DEFAULT_HOST)
    port: IntProperty(name="Port", description="Port of the server", default=protocol.DEFAULT_PORT, min=1, max=65535)
    auto_start: BoolProperty(
        name="Start server automatically",
        description="Start the server from Server Python when nothing answers at host:port",
        default=True,
    )
    device: EnumProperty(name="Device", description="Where the server runs the model", items=DEVICES, default="AUTO")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "server_python")
        row = layout.row()
        row.prop(self, "host")
        row.prop(self, "port")
        row = layout.row()
        row.prop(self, "device")
        row.prop(self, "auto_start")


def preferences(context: bpy.types.Context | None = None) -> Sketch2MeshPreferences | None:
    """This add-on's preferences, or None when it was registered without addon_utils."""
    addon = (context or bpy.context).preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def user_dir() -> Path | None:
    """The extension's user folder (for the token and log); None from a source checkout."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON_ID, path="", create=True))
    except (AttributeError, ValueError):
        return None


def settings(context: bpy.types.Context | None = None) -> Settings:
    """A thread-safe copy of the preferences. An empty Server Python falls back to the
    SKETCH2MESH_SERVER_PYTHON environment variable."""
    prefs = preferences(context)
    server_python = (prefs.server_python if prefs else "") or os.environ.get(SERVER_PYTHON_ENV, "")
    if server_python:
        server_python = bpy.path.abspath(server_python)
    if prefs is None:
        return Settings(server_python=server_python, state_dir=user_dir())
    return Settings(server_python=server_python, host=prefs.host, port=prefs.port,
                    auto_start=prefs.auto_start, device=prefs.device.lower(), state_dir=user_dir())

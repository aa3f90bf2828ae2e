"""Add-on preferences: setting up the server's environment, where its Python is and how to reach it."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import protocol, server_setup
from .server_process import Settings

SERVER_PYTHON_ENV = "SKETCH2MESH_SERVER_PYTHON"
ADDON_ID = __package__  # "sketch2mesh_addon" from a source checkout, "bl_ext.<repo>.sketch2mesh" as an extension

DEVICES = (
    ("AUTO", "Auto", "CUDA if the server finds a GPU, else CPU"),
    ("CPU", "CPU", "Always run on the CPU"),
    ("CUDA", "CUDA", "Run on an NVIDIA GPU"),
)
FLAVOURS = (
    ("CPU", "CPU", "torch for the CPU: runs everywhere, the smaller download"),
    ("CUDA", "CUDA", "torch for NVIDIA GPUs: faster, a larger download; needs an NVIDIA GPU and driver"),
)


class Sketch2MeshPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    setup_flavour: EnumProperty(name="Packages", description="Which torch Set up server installs",
                                items=FLAVOURS, default="CPU")
    setup_python: StringProperty(
        name="Setup Python",
        description="Python 3.11 to build the server environment with; empty uses Blender's own",
        subtype="FILE_PATH",
    )
    wheelhouse: StringProperty(
        name="Wheelhouse",
        description="A folder of downloaded wheels to install from, with no network; empty downloads them",
        subtype="DIR_PATH",
    )
    torch_index: StringProperty(
        name="Torch Index",
        description="Extra package index for torch's wheels; empty picks the PyTorch index for CPU or CUDA, "
                    "'none' uses pip's own configuration",
    )
    server_python: StringProperty(
        name="Server Python",
        description="Python interpreter of the Sketch2Mesh server environment; Set up server fills it, "
                    "or point it to an environment of your own (a repository checkout's .venv)",
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
        from . import panel

        layout = self.layout
        box = layout.box()
        box.label(text="Server set-up", icon="PREFERENCES")
        panel.draw_server_state(box, context, setup_button=True)
        row = box.row()
        row.prop(self, "setup_flavour", expand=True)
        gpu = server_setup.nvidia_gpu_cached()
        box.label(text=f"NVIDIA GPU: {gpu}" if gpu else "No NVIDIA GPU found: CPU it is", icon="INFO")
        box.prop(self, "setup_python")
        box.prop(self, "wheelhouse")
        box.prop(self, "torch_index")
        layout.label(text="Your own environment, and how to reach the server")
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


def env_dir() -> Path:
    """Where Set up server puts the server environment: the extension's user folder (from a
    source checkout, Blender's user data folder)."""
    root = user_dir() or Path(bpy.utils.user_resource("DATAFILES", path="sketch2mesh"))
    return root / server_setup.ENV_FOLDER


def carried_source() -> server_setup.Source:
    """The server this copy of the add-on carries; raises SetupError if it carries none."""
    from . import __file__ as package_file

    return server_setup.find_source(Path(package_file).resolve().parent)


def setup_plan(context: bpy.types.Context | None = None, directory: str = "") -> server_setup.Plan:
    """A set-up from the preferences, into ``directory`` (default :func:`env_dir`)."""
    prefs = preferences(context)
    source = carried_source()
    target = Path(bpy.path.abspath(directory)) if directory else env_dir()
    if prefs is None:
        return server_setup.Plan(env_dir=target, source=source)
    return server_setup.Plan(env_dir=target, source=source,
                             base_python=bpy.path.abspath(prefs.setup_python) if prefs.setup_python else "",
                             flavour=prefs.setup_flavour.lower(),
                             wheelhouse=bpy.path.abspath(prefs.wheelhouse) if prefs.wheelhouse else "",
                             torch_index=prefs.torch_index.strip())


def settings(context: bpy.types.Context | None = None) -> Settings:
    """A thread-safe copy of the preferences. An empty Server Python falls back to the
    SKETCH2MESH_SERVER_PYTHON environment variable, then to the environment Set up server made."""
    prefs = preferences(context)
    server_python = (prefs.server_python if prefs else "") or os.environ.get(SERVER_PYTHON_ENV, "")
    if not server_python:
        ready = server_setup.read_ready(env_dir())
        server_python = ready.python if ready is not None else ""
    if server_python:
        server_python = bpy.path.abspath(server_python)
    if prefs is None:
        return Settings(server_python=server_python, state_dir=user_dir())
    return Settings(server_python=server_python, host=prefs.host, port=prefs.port,
                    auto_start=prefs.auto_start, device=prefs.device.lower(), state_dir=user_dir())

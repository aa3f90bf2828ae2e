"""Sketch2Mesh: draw front and side strokes in Grease Pencil, get a watertight mesh.

This package is both the Blender extension (``bl_ext.<repo>.sketch2mesh``) and, from
a source checkout, the add-on module ``sketch2mesh_addon``. The model server imports
:mod:`.protocol` from it without Blender, so nothing here imports bpy at module
level: the Blender-side modules load in :func:`register`.

Registration order: the preferences, the property groups of :mod:`.props`, the
operators and the panels; then the groups are attached to scenes and objects.
Unregistering undoes it in reverse, after the running job and the server are stopped.
"""

from __future__ import annotations


def _classes() -> tuple:
    from . import operators, panel, preferences, props, server_operators

    return (preferences.Sketch2MeshPreferences, *props.CLASSES, *operators.CLASSES, *server_operators.CLASSES,
            *panel.CLASSES)


def register() -> None:
    import bpy

    from . import props

    for cls in _classes():
        bpy.utils.register_class(cls)
    props.register_properties()


def unregister() -> None:
    import bpy

    from . import jobs, props, server_process

    jobs.cancel_current()
    server_process.stop()
    props.unregister_properties()
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)

"""The add-on's typed properties, kept with the .blend.

The Reconstruct choices (backend, roundness, detail, remesh) are defined once here, for
the operators and the panel alike. Two property groups hold what the file keeps: the
scene's (``scene.sketch2mesh``: the panel's choices) and an object's
(``object.sketch2mesh``: the sketch a mesh was reconstructed from, as a pointer, so
renaming the sketch keeps the link). :func:`register_properties` attaches them once the
classes are registered; :func:`unregister_properties` detaches them before.
"""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, PointerProperty

from . import protocol, strokes

BACKENDS = (
    ("LEARNED", "Learned", "The trained network refines the round prior: where parts are boxy, hollow or open"),
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
REMESH = (
    ("NONE", "None", "Keep the reconstruction's triangle mesh"),
    ("QUADS", "Quads", "Remesh the result into quads with Blender's QuadriFlow (Blender waits while it runs; "
                       "the triangle mesh is kept if it fails)"),
)


def backend_property() -> EnumProperty:
    """Reconstruct's Backend choice, for the operator and the panel alike."""
    return EnumProperty(name="Backend", items=BACKENDS, default=DEFAULT_BACKEND)


def detail_property() -> EnumProperty:
    """Reconstruct's Detail choice, for the operator and the panel alike."""
    return EnumProperty(name="Detail", items=DETAILS, default="MEDIUM")


def roundness_property() -> FloatProperty:
    """The round backend's Roundness slider, for the operator and the panel alike."""
    lo, hi = protocol.ROUNDNESS_RANGE
    return FloatProperty(name="Roundness", description="Round backend: cross-sections from the hull's rectangles "
                         "(0) to inscribed ellipses (1)", default=protocol.DEFAULT_ROUNDNESS, min=lo, max=hi,
                         subtype="FACTOR")


def remesh_property() -> EnumProperty:
    """Reconstruct's Remesh choice, for the operator and the panel alike."""
    return EnumProperty(name="Remesh", description="What to make of the reconstructed triangle mesh", items=REMESH,
                        default="NONE")


def target_faces_property() -> IntProperty:
    """About how many quads Remesh: Quads aims for, for the operator and the panel alike."""
    return IntProperty(name="Target Faces", description="Remesh Quads: about how many quads QuadriFlow aims for "
                       "(more is finer and slower)", default=5000, min=100, max=200_000, soft_max=50_000)


def _is_sketch(self: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    """Poll of the sketch pointers: only Grease Pencil objects of this Blender version."""
    return strokes.is_sketch(obj)


class Sketch2MeshSceneSettings(bpy.types.PropertyGroup):
    """The panel's choices, saved with the scene."""

    backend: backend_property()
    roundness: roundness_property()
    detail: detail_property()
    remesh: remesh_property()
    target_faces: target_faces_property()
    fit_iterations: IntProperty(name="Iterations", default=200, min=1, max=10_000)
    fit_sketch: PointerProperty(name="Sketch", type=bpy.types.Object, poll=_is_sketch,
                                description="Sketch to fit to when the mesh was not reconstructed from one")


class Sketch2MeshObjectSettings(bpy.types.PropertyGroup):
    """What Sketch2Mesh keeps on an object: for a reconstructed mesh, its sketch."""

    sketch: PointerProperty(name="Sketch", type=bpy.types.Object, poll=_is_sketch,
                            description="The Grease Pencil sketch this mesh was reconstructed from; Fit to strokes "
                                        "fits to it")


CLASSES = (
    Sketch2MeshSceneSettings,
    Sketch2MeshObjectSettings,
)


def register_properties() -> None:
    """Attach the property groups to scenes and objects (after their classes are registered)."""
    bpy.types.Scene.sketch2mesh = PointerProperty(type=Sketch2MeshSceneSettings)
    bpy.types.Object.sketch2mesh = PointerProperty(type=Sketch2MeshObjectSettings)


def unregister_properties() -> None:
    """Detach the property groups (before their classes are unregistered); the data stays in the file."""
    del bpy.types.Object.sketch2mesh
    del bpy.types.Scene.sketch2mesh

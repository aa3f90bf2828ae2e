"""Write a result out of Blender: a .blend, .glb, .obj or .ply file of the selection, and a
rendered PNG preview of one object.

The headless script uses it once the add-on is enabled. OBJ and PLY keep Blender's
Z-up world coordinates, like the model server's output; glTF is Y-up by its
specification.
"""

from __future__ import annotations

import math
from pathlib import Path

import addon_utils
import bpy
from mathutils import Vector


class ExportError(OSError):
    """Blender did not write a file it was asked to."""


def export(path: Path) -> None:
    """Write the selected result (or the whole file, for .blend) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".blend":
        bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True, check_existing=False)
    elif suffix == ".obj":
        bpy.ops.wm.obj_export(filepath=str(path), export_selected_objects=True, forward_axis="Y", up_axis="Z",
                              export_materials=False, export_uv=False)
    elif suffix == ".ply":
        bpy.ops.wm.ply_export(filepath=str(path), export_selected_objects=True, forward_axis="Y", up_axis="Z",
                              export_uv=False, export_colors="NONE")
    elif suffix == ".glb":
        if "io_scene_gltf2" not in bpy.context.preferences.addons:
            addon_utils.enable("io_scene_gltf2")
        bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", use_selection=True)
    if not path.is_file():
        raise ExportError(f"Blender did not write {path}")


def render_preview(obj: bpy.types.Object, path: Path) -> None:
    """Render ``obj`` alone with a camera and a light that frame it: Workbench, else Cycles on the CPU.
    The scene's camera, render settings and what it hides are put back afterwards."""
    scene = bpy.context.scene
    corners = [obj.matrix_world @ Vector(c) for c in obj.bound_box]
    centre = sum(corners, Vector()) / 8
    radius = max((c - centre).length for c in corners) or 1.0
    direction = Vector((0.9, -1.4, 0.8)).normalized()

    camera = bpy.data.objects.new("Sketch2Mesh Preview Camera", bpy.data.cameras.new("Sketch2Mesh Preview Camera"))
    camera.data.angle = math.radians(35)
    camera.location = centre + direction * (radius / math.sin(camera.data.angle / 2) * 1.05)
    camera.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
    camera.data.clip_end = radius * 20
    light = bpy.data.objects.new("Sketch2Mesh Preview Light", bpy.data.lights.new("Sketch2Mesh Preview Light", "SUN"))
    light.rotation_euler = (-Vector((0.5, -1.0, 1.5)).normalized()).to_track_quat("-Z", "Y").to_euler()
    light.data.energy = 4.0
    for helper in (camera, light):
        scene.collection.objects.link(helper)

    hidden = {o.name: o.hide_render for o in scene.objects}
    saved = (scene.camera, scene.render.engine, scene.render.filepath, scene.render.resolution_x,
             scene.render.resolution_y, scene.render.resolution_percentage, scene.render.image_settings.file_format)
    try:
        for other in scene.objects:
            other.hide_render = other not in (obj, camera, light)
        scene.camera = camera
        scene.render.resolution_x = scene.render.resolution_y = 640
        scene.render.resolution_percentage = 100
        scene.render.image_settings.file_format = "PNG"
        scene.render.filepath = str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _render_workbench(scene)
        except RuntimeError:
            _render_cycles(scene)
        if not path.is_file():
            raise ExportError(f"Blender did not write the preview {path}")
    finally:
        for other in scene.objects:
            if other.name in hidden:
                other.hide_render = hidden[other.name]
        (scene.camera, scene.render.engine, scene.render.filepath, scene.render.resolution_x,
         scene.render.resolution_y, scene.render.resolution_percentage, scene.render.image_settings.file_format) = saved
        camera_data, light_data = camera.data, light.data
        bpy.data.objects.remove(camera)
        bpy.data.objects.remove(light)
        bpy.data.cameras.remove(camera_data)
        bpy.data.lights.remove(light_data)


def _render_workbench(scene: bpy.types.Scene) -> None:
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light, shading.color_type = "STUDIO", "MATERIAL"
    shading.show_cavity = True
    bpy.ops.render.render(write_still=True)


def _render_cycles(scene: bpy.types.Scene) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 16
    scene.cycles.use_denoising = False
    bpy.ops.render.render(write_still=True)

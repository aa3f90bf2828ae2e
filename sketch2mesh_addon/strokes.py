"""Read and write a sketch's strokes, in world space, for Grease Pencil v2 and v3.

A sketch is a Grease Pencil object with layers ``Front``, ``Side`` and ``Top``.
Strokes leave here as the protocol wants them: per view, a list of (N, 3) arrays
of (u, v, pressure) in the view plane of the WORLD frame, with the object's and the
layer's transforms applied. Front is read as (x, z), Side as (y, z), Top as (x, y).

Blender 4.2 has Grease Pencil v2 (object type ``GPENCIL``); 4.3 and later have v3
(``GREASEPENCIL``), whose data lives in ``bpy.data.grease_pencils_v3`` up to 4.5
and in ``bpy.data.grease_pencils`` from 5.0.
"""

from __future__ import annotations

from typing import Iterable

import bpy
import numpy as np

LAYERS = {"front": "Front", "side": "Side", "top": "Top"}
AXES = {"front": (0, 2), "side": (1, 2), "top": (0, 1)}  # world axes read as (u, v)
DEFAULT_RADIUS = 0.01  # GP v3 radius of a point without a radius attribute, in object units
INK_MATERIAL = "Sketch2Mesh Ink"


def gp_v3() -> bool:
    """True on Blender 4.3 and later (Grease Pencil v3)."""
    return bpy.app.version >= (4, 3, 0)


def sketch_object_type() -> str:
    return "GREASEPENCIL" if gp_v3() else "GPENCIL"


def is_sketch(obj: bpy.types.Object | None) -> bool:
    """Whether ``obj`` is a Grease Pencil object of this Blender's kind."""
    return obj is not None and obj.type == sketch_object_type()


def gp_datablocks() -> bpy.types.bpy_prop_collection:
    """The collection that Grease Pencil object data of this Blender's kind lives in."""
    if gp_v3() and bpy.app.version < (5, 0, 0):
        return bpy.data.grease_pencils_v3
    return bpy.data.grease_pencils


def find_layer(obj: bpy.types.Object, name: str):
    """The layer called ``name`` (GP v2 ``info``, v3 ``name``), or None."""
    for layer in obj.data.layers:
        if (layer.name if gp_v3() else layer.info) == name:
            return layer
    return None


def layer_world_matrix(obj: bpy.types.Object, layer) -> np.ndarray:
    """The 4x4 matrix that takes a layer's stored point coordinates to world space."""
    if gp_v3():
        local = np.array(layer.matrix_local)
        if layer.parent is not None:
            return np.array(layer.parent.matrix_world) @ np.array(layer.matrix_parent_inverse) @ local
        return np.array(obj.matrix_world) @ local
    local = np.array(layer.matrix_layer)
    if layer.parent is not None:
        parented = np.array(layer.parent.matrix_world) @ np.array(layer.matrix_inverse)
        parented[:3, 3] += np.array(obj.matrix_world)[:3, 3]
        return parented @ local
    return np.array(obj.matrix_world) @ local


def frame_at(layer, frame_number: int):
    """The frame shown at ``frame_number``: the last keyframe at or before it, or None."""
    shown = None
    for frame in layer.frames:
        if frame.frame_number <= frame_number and (shown is None or frame.frame_number > shown.frame_number):
            shown = frame
    return shown


def _transform(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def _layer_points_v2(frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions (N,3), pressure (N,), offsets (S+1,)) of a GP v2 frame."""
    positions, pressures, offsets = [], [], [0]
    for stroke in frame.strokes:
        n = len(stroke.points)
        co, pressure = np.empty(n * 3, np.float32), np.empty(n, np.float32)
        stroke.points.foreach_get("co", co)
        stroke.points.foreach_get("pressure", pressure)
        positions.append(co.reshape(n, 3))
        pressures.append(pressure)
        offsets.append(offsets[-1] + n)
    if not positions:
        return np.zeros((0, 3), np.float32), np.zeros(0, np.float32), np.zeros(1, np.int64)
    return np.concatenate(positions), np.concatenate(pressures), np.asarray(offsets, np.int64)


def _layer_points_v3(frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions (N,3), pressure (N,), offsets (S+1,)) of a GP v3 frame.

    v3 stores no pressure; the pen's pressure shows in the radius, so pressure is the
    radius relative to the drawing's widest point."""
    drawing = frame.drawing
    offsets = np.zeros(len(drawing.curve_offsets), np.int64)
    drawing.curve_offsets.foreach_get("value", offsets)
    n = int(offsets[-1]) if len(offsets) else 0
    positions = np.zeros(n * 3, np.float32)
    if n:
        drawing.attributes["position"].data.foreach_get("vector", positions)
    radius = np.full(n, DEFAULT_RADIUS, np.float32)
    if n and "radius" in drawing.attributes:
        drawing.attributes["radius"].data.foreach_get("value", radius)
    widest = float(radius.max()) if n else 0.0
    pressure = radius / widest if widest > 0 else np.ones(n, np.float32)
    return positions.reshape(n, 3), pressure.astype(np.float32), offsets if len(offsets) else np.zeros(1, np.int64)


def _world_points(obj: bpy.types.Object, view: str,
                  frame_number: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A view's points in world space (N, 3), their pressure (N,) and the strokes' offsets (S + 1,)."""
    layer = find_layer(obj, LAYERS[view])
    number = bpy.context.scene.frame_current if frame_number is None else frame_number
    frame = frame_at(layer, number) if layer is not None else None
    if frame is None:
        return np.zeros((0, 3)), np.zeros(0, np.float32), np.zeros(1, np.int64)
    positions, pressure, offsets = (_layer_points_v3 if gp_v3() else _layer_points_v2)(frame)
    return _transform(positions.astype(np.float64), layer_world_matrix(obj, layer)), pressure, offsets


def read_view(obj: bpy.types.Object, view: str, frame_number: int | None = None) -> list[np.ndarray]:
    """One view's strokes as (N, 3) arrays of (u, v, pressure) in the world view plane."""
    world, pressure, offsets = _world_points(obj, view, frame_number)
    u, v = AXES[view]
    uvp = np.stack([world[:, u], world[:, v], pressure], axis=1).astype(np.float32)
    return [uvp[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def read_sketch(obj: bpy.types.Object, frame_number: int | None = None) -> dict[str, list[np.ndarray]]:
    """All views of a sketch: view name -> strokes (see :func:`read_view`). Top only if drawn."""
    sketch = {view: read_view(obj, view, frame_number) for view in LAYERS}
    if not any(len(s) for s in sketch["top"]):
        del sketch["top"]
    return sketch


def unseen_centre(obj: bpy.types.Object, sketch: dict[str, list[np.ndarray]],
                  frame_number: int | None = None) -> np.ndarray:
    """The world offset (3,) that puts the reconstruction of ``sketch`` (read from ``obj``)
    where its strokes are, along the axes no drawn view measures.

    Strokes travel as view-plane coordinates only, so the server centres an axis that no
    drawn view sees (y with the front alone, x with the side alone) on 0. The strokes
    themselves lie at some depth along it: the offset is the mean of that coordinate over
    the drawn views' points on such axes, and 0 on every other axis."""
    drawn = [view for view, view_strokes in sketch.items() if any(len(s) for s in view_strokes)]
    seen = {axis for view in drawn for axis in AXES[view]}
    unseen = [axis for axis in range(3) if axis not in seen]
    offset = np.zeros(3)
    if unseen and drawn:
        points = np.concatenate([_world_points(obj, view, frame_number)[0] for view in drawn])
        offset[unseen] = points[:, unseen].mean(axis=0)
    return offset


def _frame_for_writing(layer, frame_number: int):
    for frame in layer.frames:
        if frame.frame_number == frame_number:
            return frame
    return layer.frames.new(frame_number)


def _to_layer_space(obj: bpy.types.Object, layer, view: str, stroke: np.ndarray, depth: float) -> np.ndarray:
    s = np.asarray(stroke, np.float64).reshape(len(stroke), -1)
    world = np.full((len(s), 3), float(depth))
    u, v = AXES[view]
    world[:, u], world[:, v] = s[:, 0], s[:, 1]
    return _transform(world, np.linalg.inv(layer_world_matrix(obj, layer))).astype(np.float32)


def _pressure(stroke: np.ndarray) -> np.ndarray:
    s = np.asarray(stroke, np.float32).reshape(len(stroke), -1)
    return s[:, 2] if s.shape[1] > 2 else np.ones(len(s), np.float32)


def write_view(obj: bpy.types.Object, view: str, strokes: Iterable[np.ndarray], *, depth: float = 0.0,
               frame_number: int | None = None, radius: float = DEFAULT_RADIUS) -> None:
    """Append strokes to a view's layer (created if missing) at ``frame_number`` (default: the
    scene's current frame). Each stroke is an (N, 2|3) array of (u, v[, pressure]) in the world
    view plane; the coordinate along the view axis is ``depth``. Inverse of :func:`read_view`."""
    strokes = [np.asarray(s, np.float32) for s in strokes if len(s)]
    layer = find_layer(obj, LAYERS[view]) or obj.data.layers.new(LAYERS[view])
    frame = _frame_for_writing(layer, bpy.context.scene.frame_current if frame_number is None else frame_number)
    local = [_to_layer_space(obj, layer, view, s, depth) for s in strokes]
    pressure = [_pressure(s) for s in strokes]
    if gp_v3():
        _append_v3(frame.drawing, local, pressure, radius)
    else:
        _append_v2(frame, local, pressure, radius)


def _append_v2(frame, local: list[np.ndarray], pressure: list[np.ndarray], radius: float) -> None:
    for points, press in zip(local, pressure):
        stroke = frame.strokes.new()
        stroke.display_mode = "3DSPACE"
        stroke.line_width = max(1, round(radius * 2000))
        stroke.points.add(len(points))
        stroke.points.foreach_set("co", points.ravel())
        stroke.points.foreach_set("pressure", press)
        stroke.points.foreach_set("strength", np.ones(len(points), np.float32))


def _append_v3(drawing, local: list[np.ndarray], pressure: list[np.ndarray], radius: float) -> None:
    if not local:
        return
    old = len(drawing.attributes["position"].data) if "position" in drawing.attributes else 0
    drawing.add_strokes([len(p) for p in local])
    positions = np.zeros((old + sum(len(p) for p in local)) * 3, np.float32)
    drawing.attributes["position"].data.foreach_get("vector", positions)
    positions[old * 3:] = np.concatenate(local).ravel()
    drawing.attributes["position"].data.foreach_set("vector", positions)
    _set_point_floats(drawing, "radius", old, radius * np.concatenate(pressure), DEFAULT_RADIUS)
    _set_point_floats(drawing, "opacity", old, np.ones(len(positions) // 3 - old, np.float32), 1.0)
    drawing.tag_positions_changed()


def _set_point_floats(drawing, name: str, old: int, new_values: np.ndarray, default: float) -> None:
    """Set a float point attribute for the points after ``old``; earlier points keep theirs (or ``default``)."""
    values = np.full(old + len(new_values), default, np.float32)
    attribute = drawing.attributes.get(name)
    if attribute is None:
        attribute = drawing.attributes.new(name, "FLOAT", "POINT")
    elif old:
        attribute.data.foreach_get("value", values)
    values[old:] = new_values
    attribute.data.foreach_set("value", values)


def write_sketch(obj: bpy.types.Object, sketch: dict[str, list[np.ndarray]], **kwargs) -> None:
    """Write every view of ``sketch`` (view -> strokes) with :func:`write_view`."""
    for view, view_strokes in sketch.items():
        write_view(obj, view, view_strokes, **kwargs)


def ink_material() -> bpy.types.Material:
    """A black Grease Pencil stroke material, shared by sketches."""
    material = bpy.data.materials.get(INK_MATERIAL)
    if material is None or material.grease_pencil is None:
        material = bpy.data.materials.new(INK_MATERIAL)
        bpy.data.materials.create_gpencil_data(material)
        material.grease_pencil.color = (0.0, 0.0, 0.0, 1.0)
    return material


def new_sketch(collection: bpy.types.Collection, name: str = "Sketch") -> bpy.types.Object:
    """A new Grease Pencil object with empty Front, Side and Top layers, linked to ``collection``."""
    data = gp_datablocks().new(name)
    data.materials.append(ink_material())
    for view in ("top", "side", "front"):
        data.layers.new(LAYERS[view])
    obj = bpy.data.objects.new(name, data)
    collection.objects.link(obj)
    return obj


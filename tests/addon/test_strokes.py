"""Reading and writing sketch strokes in world space, Grease Pencil v2 (4.2) and v3 (4.3+)."""

from __future__ import annotations

import math

import bpy
import numpy as np
import pytest

from sketch2mesh_addon import strokes

FRONT = [np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.5], [1.0, 1.0, 0.25]], np.float32),
         np.array([[-0.5, 0.2, 1.0], [0.3, -0.7, 1.0]], np.float32)]
SIDE = [np.array([[0.1, 0.2], [0.4, 0.9], [-0.3, 0.5], [0.0, 0.0]], np.float32)]
TOP = [np.array([[0.2, -0.2], [0.6, 0.1]], np.float32)]


def _sketch(scene):
    obj = strokes.new_sketch(scene.collection)
    bpy.context.view_layer.update()
    return obj


def _set_layer_transform(obj, view: str, translation, rotation) -> None:
    layer = strokes.find_layer(obj, strokes.LAYERS[view])
    if strokes.gp_v3():
        layer.translation, layer.rotation = translation, rotation
    else:
        layer.location, layer.rotation = translation, rotation


def test_sketch_object_matches_blender_version(scene):
    obj = _sketch(scene)
    assert obj.type == ("GREASEPENCIL" if bpy.app.version >= (4, 3, 0) else "GPENCIL")
    assert obj.data.name in strokes.gp_datablocks()
    assert {strokes.find_layer(obj, n) is not None for n in ("Front", "Side", "Top")} == {True}


def test_round_trip_keeps_points_pressure_and_strokes(scene):
    obj = _sketch(scene)
    strokes.write_sketch(obj, {"front": FRONT, "side": SIDE, "top": TOP})
    got = strokes.read_sketch(obj)
    assert sorted(got) == ["front", "side", "top"]
    for view, expected in (("front", FRONT), ("side", SIDE), ("top", TOP)):
        assert len(got[view]) == len(expected)
        for g, e in zip(got[view], expected):
            np.testing.assert_allclose(g[:, :2], e[:, :2], atol=1e-5)
            pressure = e[:, 2] if e.shape[1] > 2 else np.ones(len(e))
            np.testing.assert_allclose(g[:, 2], pressure, atol=1e-5)


def test_round_trip_through_object_and_layer_transforms(scene):
    obj = _sketch(scene)
    obj.location, obj.rotation_euler, obj.scale = (1.0, -2.0, 0.5), (0.3, -0.2, 0.7), (2.0, 1.5, 0.5)
    _set_layer_transform(obj, "side", (0.5, 0.1, -0.3), (0.0, 0.4, 0.2))
    bpy.context.view_layer.update()
    strokes.write_sketch(obj, {"front": FRONT, "side": SIDE})
    got = strokes.read_sketch(obj)
    np.testing.assert_allclose(got["front"][0][:, :2], FRONT[0][:, :2], atol=1e-4)
    np.testing.assert_allclose(got["side"][0][:, :2], SIDE[0], atol=1e-4)
    assert "top" not in got  # an empty Top layer is left out


def test_object_translation_and_scale_reach_world_coordinates(scene):
    obj = _sketch(scene)
    strokes.write_sketch(obj, {"front": FRONT, "side": SIDE})
    obj.location, obj.scale = (1.0, 2.0, 3.0), (2.0, 2.0, 2.0)
    bpy.context.view_layer.update()
    got = strokes.read_sketch(obj)
    np.testing.assert_allclose(got["front"][0][:, :2], FRONT[0][:, :2] * 2 + [1.0, 3.0], atol=1e-5)
    np.testing.assert_allclose(got["side"][0][:, :2], SIDE[0] * 2 + [2.0, 3.0], atol=1e-5)


def test_object_rotation_turns_front_strokes_edge_on(scene):
    obj = _sketch(scene)
    strokes.write_sketch(obj, {"front": FRONT})
    obj.rotation_euler = (0.0, 0.0, math.pi / 2)  # the front plane (x, z) turns into the side plane (y, z)
    bpy.context.view_layer.update()
    front = strokes.read_view(obj, "front")[0]
    np.testing.assert_allclose(front[:, 0], 0.0, atol=1e-5)
    np.testing.assert_allclose(front[:, 1], FRONT[0][:, 1], atol=1e-5)


def test_layer_translation_reaches_world_coordinates(scene):
    obj = _sketch(scene)
    strokes.write_sketch(obj, {"top": TOP})
    _set_layer_transform(obj, "top", (0.25, -0.5, 7.0), (0.0, 0.0, 0.0))
    bpy.context.view_layer.update()
    np.testing.assert_allclose(strokes.read_view(obj, "top")[0][:, :2], TOP[0] + [0.25, -0.5], atol=1e-5)


def test_reads_the_frame_shown_at_the_current_scene_frame(scene):
    obj = _sketch(scene)
    strokes.write_view(obj, "front", FRONT[:1], frame_number=1)
    strokes.write_view(obj, "front", FRONT, frame_number=10)
    scene.frame_set(5)
    assert len(strokes.read_view(obj, "front")) == 1
    scene.frame_set(12)
    assert len(strokes.read_view(obj, "front")) == 2
    assert strokes.read_view(obj, "front", frame_number=0) == []


def test_writing_appends_to_existing_strokes(scene):
    obj = _sketch(scene)
    strokes.write_view(obj, "side", SIDE)
    strokes.write_view(obj, "side", [np.array([[5.0, 5.0], [6.0, 6.5]])])
    got = strokes.read_view(obj, "side")
    assert [len(s) for s in got] == [len(SIDE[0]), 2]
    np.testing.assert_allclose(got[0][:, :2], SIDE[0], atol=1e-5)
    np.testing.assert_allclose(got[1][:, :2], [[5.0, 5.0], [6.0, 6.5]], atol=1e-5)


def test_missing_layer_reads_as_no_strokes(scene):
    obj = _sketch(scene)
    layer = strokes.find_layer(obj, "Side")
    obj.data.layers.remove(layer)
    assert strokes.read_view(obj, "side") == []


@pytest.mark.parametrize("view", ["front", "side", "top"])
def test_each_view_reads_its_own_world_axes(scene, view):
    obj = _sketch(scene)
    strokes.write_view(obj, view, [np.array([[0.3, 0.7], [0.9, -0.1]])], depth=4.0)
    layer = strokes.find_layer(obj, strokes.LAYERS[view])
    frame = strokes.frame_at(layer, scene.frame_current)
    if strokes.gp_v3():
        first = tuple(frame.drawing.strokes[0].points[0].position)
    else:
        first = tuple(frame.strokes[0].points[0].co)
    expected = {"front": (0.3, 4.0, 0.7), "side": (4.0, 0.3, 0.7), "top": (0.3, 0.7, 4.0)}[view]
    np.testing.assert_allclose(first, expected, atol=1e-5)


@pytest.mark.parametrize("views, expected", [
    (("front",), [0.0, 0.3 - 1.0, 0.0]),           # y: where the front strokes lie
    (("side",), [-0.2 + 2.0, 0.0, 0.0]),           # x: where the side strokes lie
    (("front", "side"), [0.0, 0.0, 0.0]),          # every axis is drawn
    (("front", "top"), [0.0, 0.0, 0.0]),           # the top view measures y
])
def test_unseen_centre_is_where_the_strokes_lie_along_the_axes_no_view_draws(scene, views, expected):
    obj = _sketch(scene)
    depth = {"front": 0.3, "side": -0.2, "top": 5.0}
    for view in views:
        strokes.write_view(obj, view, {"front": FRONT, "side": SIDE, "top": TOP}[view], depth=depth[view])
    obj.location = (2.0, -1.0, 0.5)
    bpy.context.view_layer.update()
    sketch = strokes.read_sketch(obj)
    np.testing.assert_allclose(strokes.unseen_centre(obj, sketch), expected, atol=1e-5)

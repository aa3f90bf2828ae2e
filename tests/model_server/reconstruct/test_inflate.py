"""One view alone: the inflated solid of a single silhouette, its 14 views' maps, and the
mesh fusion makes of them."""

from __future__ import annotations

import time

import numpy as np
import pytest

from model_server.errors import Refused
from model_server.geometry.mesh import closed_and_oriented, signed_volume
from model_server.geometry.views import FRONT, SIDE, VIEWS, plane_grid, unproject
from model_server.reconstruct import fusion
from model_server.reconstruct.inflate import inflated_maps

RES = 256
PIXEL = 2.0 / RES
U, V = plane_grid(FRONT, RES)   # every input view shares the canvas; (u, v) of each pixel centre
FRONT_INDEX, SIDE_INDEX = VIEWS.index(FRONT), VIEWS.index(SIDE)


def disk(radius: float, cu: float = 0.0, cv: float = 0.0) -> np.ndarray:
    return (U - cu) ** 2 + (V - cv) ** 2 < radius ** 2


def lamp(stem_px: int) -> np.ndarray:
    """A round shade, a stem ``stem_px`` pixels wide and a flat base."""
    stem = (np.abs(U - 0.5 * PIXEL * (stem_px % 2)) < 0.5 * stem_px * PIXEL) & (V > -0.72) & (V < 0.3)
    return disk(0.3, cv=0.5) | stem | ((np.abs(U) < 0.4) & (np.abs(V + 0.75) < 0.05))


def world_points(maps, index: int) -> np.ndarray:
    rows, cols = np.nonzero(maps.mask[index] > 0.5)
    return unproject(VIEWS[index], rows, cols, maps.depth[index][rows, cols], RES)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture(scope="module")
def sphere_maps():
    return inflated_maps("front", disk(0.6), RES)


def test_a_disk_inflates_to_a_sphere(sphere_maps):
    maps, radius = sphere_maps, 0.6
    assert iou(maps.mask[FRONT_INDEX] > 0.5, disk(radius)) > 0.98   # the drawn view shows what was drawn
    # The drawn view sees the sphere's front half: volume twice its depth integral, height the radius.
    volume = 2.0 * float(-maps.depth[FRONT_INDEX].sum()) * PIXEL ** 2
    assert volume == pytest.approx(4.0 / 3.0 * np.pi * radius ** 3, rel=0.03)
    assert -maps.depth[FRONT_INDEX].min() == pytest.approx(radius, abs=2 * PIXEL)
    # Every view's surface lies on the sphere, and its normals point away from the centre.
    for index in range(len(VIEWS)):
        points = world_points(maps, index)
        assert np.abs(np.linalg.norm(points, axis=1) - radius).max() < 3 * PIXEL, VIEWS[index].name
        normals = maps.normal[index][maps.mask[index] > 0.5] @ VIEWS[index].rotation
        radial = points / np.linalg.norm(points, axis=1, keepdims=True)
        assert np.median(np.degrees(np.arccos(np.clip((normals * radial).sum(1), -1, 1)))) < 3.0


def test_the_solid_is_symmetric_about_the_drawing_plane(sphere_maps):
    # Seen from the side (image right = +y), the front sketch's depth runs left-right: its
    # mask and depth mirror about the drawing plane y = 0.
    mask, depth = sphere_maps.mask[SIDE_INDEX] > 0.5, sphere_maps.depth[SIDE_INDEX]
    assert iou(mask, mask[:, ::-1]) > 0.99
    both = mask & mask[:, ::-1]
    assert np.abs(depth - depth[:, ::-1])[both].max() < 1.5 * PIXEL
    points = world_points(sphere_maps, SIDE_INDEX)
    assert abs(points[:, 1].min() + points[:, 1].max()) < 2 * PIXEL


def test_maps_are_consistent_camera_frame_maps(sphere_maps):
    maps = sphere_maps
    fg = maps.mask > 0.5
    assert set(np.unique(maps.mask)) <= {0.0, 1.0}
    np.testing.assert_allclose(np.linalg.norm(maps.normal[fg], axis=-1), 1.0, atol=1e-5)
    assert (maps.normal[fg][:, 2] >= 0).all()                 # every normal faces its viewer
    assert not maps.depth[~fg].any() and not maps.normal[~fg].any()
    assert all(fg[i].any() for i in range(len(VIEWS)))


def test_long_shapes_get_thin_round_cross_sections():
    # A 1.6 x 0.4 rectangle: a tube of radius about 0.2, not a slab as thick as it is wide.
    maps = inflated_maps("front", (np.abs(U) < 0.8) & (np.abs(V) < 0.2), RES)
    depth = -maps.depth[FRONT_INDEX]
    assert depth.max() == pytest.approx(0.2, abs=2 * PIXEL)
    middle = depth[:, RES // 2]
    rows = np.nonzero(maps.mask[FRONT_INDEX][:, RES // 2] > 0.5)[0]
    v = 1.0 - (rows + 0.5) * PIXEL
    inner = np.abs(v) < 0.2 - 2 * PIXEL    # the rim is too steep to compare depths on
    np.testing.assert_allclose(middle[rows][inner], np.sqrt(0.2 ** 2 - v[inner] ** 2), atol=2 * PIXEL)
    # From the side its thickness shows: about 0.4 across y, as tall as it is (0.4 in z).
    side = maps.mask[SIDE_INDEX] > 0.5
    assert side.any(axis=0).sum() * PIXEL == pytest.approx(0.4, abs=3 * PIXEL)
    assert side.any(axis=1).sum() * PIXEL == pytest.approx(0.4, abs=3 * PIXEL)


def test_an_ellipse_is_thinner_than_it_is_wide():
    maps = inflated_maps("front", (U / 0.8) ** 2 + (V / 0.3) ** 2 < 1, RES)
    points = np.concatenate([world_points(maps, i) for i in range(len(VIEWS))])
    width, thickness, height = points.max(0) - points.min(0)
    assert width == pytest.approx(1.6, abs=0.03) and height == pytest.approx(0.6, abs=0.03)
    assert thickness < 0.7 * width and thickness == pytest.approx(height, abs=0.05)


def test_a_side_sketch_inflates_along_x():
    # Drawn on the side canvas (u = world y, v = world z), centred at y = 0.3.
    maps = inflated_maps("side", disk(0.4, cu=0.3), RES)
    assert iou(maps.mask[SIDE_INDEX] > 0.5, disk(0.4, cu=0.3)) > 0.98
    points = np.concatenate([world_points(maps, i) for i in range(len(VIEWS))])
    np.testing.assert_allclose(points.min(0), [-0.4, -0.1, -0.4], atol=2 * PIXEL)
    np.testing.assert_allclose(points.max(0), [0.4, 0.7, 0.4], atol=2 * PIXEL)
    # From the front (image right = +x) it is as thick as the disk is wide, centred on x = 0.
    front = maps.mask[FRONT_INDEX] > 0.5
    assert iou(front, disk(0.4)) > 0.95


def test_separate_parts_each_inflate_by_their_own_size():
    maps = inflated_maps("front", disk(0.2, cu=-0.5) | disk(0.35, cu=0.4), RES)
    depth = -maps.depth[FRONT_INDEX]
    left, right = depth[:, :RES // 2 - 10].max(), depth[:, RES // 2 + 10:].max()
    assert left == pytest.approx(0.2, abs=2 * PIXEL) and right == pytest.approx(0.35, abs=2 * PIXEL)


@pytest.mark.parametrize("stem_px", [2, 3])
def test_a_thin_stem_stays_a_closed_solid_a_few_pixels_thick(stem_px):
    maps = inflated_maps("front", lamp(stem_px), RES)
    row = RES // 2     # v = 0, half-way up the stem
    drawn = maps.mask[FRONT_INDEX][row] > 0.5
    assert drawn.sum() == stem_px                                   # as wide as drawn
    assert -maps.depth[FRONT_INDEX][row][drawn].max() >= 1.0 * PIXEL  # at least 2 pixels thick
    assert (maps.mask[SIDE_INDEX][row] > 0.5).sum() >= 2             # and seen so from the side


@pytest.mark.parametrize("silhouette, view", [
    (disk(0.6), "front"),
    (lamp(4), "front"),
    (disk(0.2, cu=-0.5) | disk(0.35, cu=0.4), "side"),
])
def test_fusion_makes_a_closed_outward_mesh(silhouette, view):
    fused = fusion.fuse(inflated_maps(view, silhouette, RES), "low")
    assert closed_and_oriented(fused.faces) and signed_volume(fused.vertices, fused.faces) > 0


def test_the_fused_sphere_has_the_spheres_volume(sphere_maps):
    fused = fusion.fuse(sphere_maps, "medium")
    vertices, faces = fused.vertices, fused.faces
    assert signed_volume(vertices, faces) == pytest.approx(4.0 / 3.0 * np.pi * 0.6 ** 3, rel=0.04)
    lo, hi = vertices.min(0), vertices.max(0)
    np.testing.assert_allclose(lo, -hi, atol=2 * PIXEL)                # centred: symmetric about y = 0 too
    np.testing.assert_allclose(hi, 0.6, atol=3 * PIXEL)


@pytest.mark.slow
def test_it_is_quick():
    """The one timed check of this file, with a generous bound: about 0.3 s alone, far more on a loaded machine."""
    silhouette = (np.abs(U) < 0.85) & (np.abs(V) < 0.85)    # the largest a normalised sketch gets
    inflated_maps("front", silhouette, RES)                   # the first call builds the rays' cache
    started = time.perf_counter()
    inflated_maps("front", silhouette, RES)
    assert time.perf_counter() - started < 5.0


@pytest.mark.parametrize("view, silhouette", [("front", np.zeros((RES, RES), bool)), ("top", disk(0.5))])
def test_nothing_to_inflate_is_refused(view, silhouette):
    with pytest.raises(Refused):
        inflated_maps(view, silhouette, RES)

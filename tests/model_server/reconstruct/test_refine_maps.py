"""The learned backend's shared inputs and outputs: downsampling, ink lifted onto the hull,
and the conservative application of the network's answer."""

from __future__ import annotations

import numpy as np
import pytest

from model_server.geometry import views
from model_server.geometry.maps import Maps
from model_server.reconstruct.backends import hull, refine_maps
from model_server.sketch.rasterize import rasterize_strokes
from model_server.sketch.silhouette import fill_silhouette

R = refine_maps.NET_RESOLUTION


@pytest.fixture(scope="module")
def mug(sketches):
    inks = {view: rasterize_strokes(strokes) for view, strokes in sketches["mug"].items()}
    silhouettes = {view: fill_silhouette(ink) for view, ink in inks.items()}
    return inks, hull.hull_maps(silhouettes)


def test_downsampling_keeps_majority_masks_and_mean_depths():
    depth = np.zeros((14, 4, 4), np.float32)
    mask = np.zeros((14, 4, 4), np.float32)
    mask[:, :2, :2] = [[1, 1], [1, 0]]      # 3 of 4: foreground
    depth[:, :2, :2] = [[1, 2], [3, 9]]
    mask[:, 2:, 2:] = [[1, 0], [0, 0]]      # 1 of 4: background
    normal = np.zeros((14, 4, 4, 3), np.float32)
    normal[..., 2] = mask
    small = refine_maps.downsample(Maps(depth, normal, mask), 2)
    assert small.mask[0].tolist() == [[1, 0], [0, 0]]
    assert small.depth[0, 0, 0] == pytest.approx(2.0)
    np.testing.assert_allclose(small.normal[0, 0, 0], [0, 0, 1])
    assert not small.normal[0, 1, 1].any()


def test_inputs_have_the_documented_channels(mug):
    inks, maps = mug
    x = refine_maps.network_inputs(maps, inks)
    assert x.shape == (14, refine_maps.INPUT_CHANNELS, R, R) and x.dtype == np.float32
    small = refine_maps.downsample(maps, maps.resolution // R)
    np.testing.assert_array_equal(x[:, 4], small.mask)
    np.testing.assert_array_equal(x[:, 0], small.depth)
    assert "top" not in inks and not x[:, 7].any() and not x[:, 8].any()   # no top drawn: its ink and flag are 0
    with_top = refine_maps.network_inputs(maps, {**inks, "top": np.ones_like(inks["front"])})
    assert (with_top[:, 8] == 1.0).all() and with_top[:, 7].max() == 1.0
    assert not x[:, 5:8][np.broadcast_to(x[:, 4:5] == 0, x[:, 5:8].shape)].any(), "ink only on the hull"


def test_ink_lifted_onto_the_hull_lands_where_its_3d_point_projects():
    """A single ink dot in the front drawing lights up, in every view, exactly the hull
    pixels whose points project onto it."""
    res = 256
    rows, cols = np.meshgrid(np.arange(res), np.arange(res), indexing="ij")
    ball = ((rows - 128) ** 2 + (cols - 128) ** 2 < 60 ** 2)
    maps = hull.hull_maps({"front": ball, "side": ball}, res)
    ink = np.zeros((res, res), np.float32)
    ink[100:104, 150:154] = 1.0
    lifted = refine_maps.lift_ink(maps, {"front": ink})
    assert not lifted[:, 1:].any()
    front_view = lifted[0, 0]
    assert front_view[100:104, 150:154].min() > 0.9     # the front view sees the ink where it was drawn
    assert front_view.sum() < 60
    for i, view in enumerate(views.VIEWS):
        r, c = np.nonzero(lifted[i, 0] > 0.5)
        if not len(r):
            continue
        points = views.unproject(view, r, c, maps.depth[i][r, c], res)
        fr, fc, _ = views.project(views.FRONT, points, res)
        assert (np.abs(fr - 101.5) < 4).all() and (np.abs(fc - 151.5) < 4).all(), view.name


def test_a_neutral_answer_gives_the_hull_back(mug):
    _, maps = mug
    same = refine_maps.refined_maps(maps, np.zeros((14, R, R)), np.ones((14, R, R)), np.zeros((14, 3, R, R)))
    np.testing.assert_array_equal(same.mask, maps.mask)
    np.testing.assert_allclose(same.depth, maps.depth, atol=1e-6)
    fg = maps.mask > 0.5
    np.testing.assert_allclose(same.normal[fg], maps.normal[fg], atol=1e-5)


def test_the_answer_never_leaves_the_hull_and_spares_thin_parts():
    """Carving everything removes every wide part but keeps the thin stem; depth only grows."""
    res = 256
    rows, cols = np.meshgrid(np.arange(res), np.arange(res), indexing="ij")
    body = ((rows - 90) ** 2 + (cols - 128) ** 2 < 50 ** 2)
    stem = (rows >= 90) & (rows < 220) & (np.abs(cols - 128) <= 1)      # 3 pixels wide
    shape = body | stem
    maps = hull.hull_maps({"front": shape, "side": shape}, res)
    carved = refine_maps.refined_maps(maps, np.full((14, R, R), 0.2), np.zeros((14, R, R)), np.zeros((14, 3, R, R)))
    assert not (carved.mask > maps.mask).any()
    front = carved.mask[0] > 0.5
    assert front[160:210, 127:130].all(), "the thin stem survives"
    assert not front[70:110, 110:146].any(), "the wide body is carved"
    kept = carved.mask > 0.5
    assert (carved.depth[kept] >= maps.depth[kept] + 0.2 - 1e-5).all()

"""Synthetic sketches: every style draws every view, registered with the ground truth and
between views, deterministically, and the pipeline can rebuild a shape from them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from model_server.evaluation import metrics
from model_server.reconstruct import pipeline
from model_server.learning.data import lines as line_finding, sketches
from model_server.geometry.surface_nets import surface_nets
from model_server.geometry.raycast import render_maps
from model_server.geometry.views import INPUT_VIEWS

RES = 128


def sdf_mesh(field_fn, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A closed mesh of the zero level set of ``field_fn(x, y, z)`` sampled on [-1, 1]^3."""
    axis = np.linspace(-1.0, 1.0, n)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    return surface_nets(field_fn(x, y, z).astype(np.float32), -1.0, 2.0 / (n - 1))


def step_block(x, y, z):
    """A box with a smaller box standing on it, off-centre: silhouettes, creases and a step."""
    def box(cx, cy, cz, hx, hy, hz):
        q = np.stack([np.abs(x - cx) - hx, np.abs(y - cy) - hy, np.abs(z - cz) - hz])
        return np.linalg.norm(np.maximum(q, 0.0), axis=0) + np.minimum(q.max(axis=0), 0.0)
    return np.minimum(box(0.0, 0.0, -0.4, 0.75, 0.5, 0.3), box(0.3, -0.2, 0.2, 0.3, 0.25, 0.35))


def smooth_min(a, b, k: float = 0.15):
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def blobs(x, y, z):
    """Three spheres blended smoothly, one nearer the front viewer: concave folds where
    suggestive contours appear."""
    a = np.sqrt((x - 0.35) ** 2 + y ** 2 + z ** 2) - 0.45
    b = np.sqrt((x + 0.35) ** 2 + y ** 2 + (z - 0.1) ** 2) - 0.4
    c = np.sqrt(x ** 2 + (y + 0.3) ** 2 + (z - 0.45) ** 2) - 0.25
    return smooth_min(smooth_min(a, b), c)


def sphere(x, y, z):
    return np.sqrt(x ** 2 + y ** 2 + z ** 2) - 0.75


@pytest.fixture(scope="module")
def block():
    vertices, faces = sdf_mesh(step_block)
    return vertices, faces, render_maps(vertices, faces, RES, tuple(INPUT_VIEWS.values()))


@pytest.fixture(scope="module")
def block_sketches(block):
    return sketches.draw_sketches(block[2], np.random.default_rng(7))


def test_every_style_draws_every_view(block_sketches):
    assert block_sketches.shape == (len(sketches.STYLES), 3, RES, RES)
    assert block_sketches.dtype == np.float32
    assert block_sketches.min() >= 0.0 and block_sketches.max() <= 1.0
    for style in range(len(sketches.STYLES)):
        for view in range(3):
            ink = block_sketches[style, view]
            assert (ink > 0.5).sum() > 100, (sketches.STYLES[style], view)
            assert (ink > 0.5).mean() < 0.2


def test_lines_follow_the_silhouette(block, block_sketches):
    """Every style covers (nearly all of) the mask's outline, and draws nothing far outside it."""
    masks = block[2].mask > 0.5
    for style, coverage in zip(sketches.STYLES, (0.97, 0.85, 0.9)):
        for view in range(3):
            mask = masks[view]
            outline = mask & ~ndimage.binary_erosion(mask)
            near_ink = ndimage.binary_dilation(block_sketches[sketches.STYLES.index(style), view] > 0.3, iterations=2)
            assert (near_ink & outline).sum() >= coverage * outline.sum(), (style, view)
            far_outside = ~ndimage.binary_dilation(mask, iterations=4)
            assert not (block_sketches[sketches.STYLES.index(style), view] > 0.3)[far_outside].any(), (style, view)


def ink_extent(ink: np.ndarray, axis: int) -> tuple[int, int]:
    """First and last row (axis 0) or column (axis 1) holding ink."""
    hit = np.flatnonzero((ink > 0.5).any(axis=1 - axis))
    return int(hit[0]), int(hit[-1])


@pytest.mark.parametrize("style", sketches.STYLES)
def test_views_are_registered_with_each_other(block_sketches, style):
    """z from front and side rows, x from front and top columns, y from side columns and top rows."""
    front, side, top = block_sketches[sketches.STYLES.index(style)]
    tolerance = 3
    np.testing.assert_allclose(ink_extent(front, 0), ink_extent(side, 0), atol=tolerance)
    np.testing.assert_allclose(ink_extent(front, 1), ink_extent(top, 1), atol=tolerance)
    first, last = ink_extent(top, 0)
    np.testing.assert_allclose(ink_extent(side, 1), (RES - 1 - last, RES - 1 - first), atol=tolerance)


def test_interior_lines_are_found(block):
    """The step between the two boxes shows as interior lines (creases / depth discontinuities)."""
    maps = block[2]
    lines = line_finding.trace_view(maps.depth[0], maps.normal[0], maps.mask[0] > 0.5)
    assert sum(len(c) for c in lines.interior) > 30
    assert sum(len(c) for c in lines.silhouette) > 200


def test_suggestive_contours_appear_in_concave_places_only():
    for field_fn, expect in ((blobs, True), (sphere, False)):
        vertices, faces = sdf_mesh(field_fn, 96)
        maps = render_maps(vertices, faces, 256, (INPUT_VIEWS["front"],))
        lines = line_finding.trace_view(maps.depth[0], maps.normal[0], maps.mask[0] > 0.5)
        assert (sum(len(c) for c in lines.suggestive) > 10) == expect, field_fn.__name__


def test_same_seed_same_sketches(block):
    maps = block[2]
    a = sketches.draw_sketches(maps, np.random.default_rng(3))
    b = sketches.draw_sketches(maps, np.random.default_rng(3))
    c = sketches.draw_sketches(maps, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[1], c[1])


def test_sketchy_differs_from_clean_but_stays_close(block_sketches):
    clean, sketchy = block_sketches[0] > 0.5, block_sketches[1] > 0.5
    assert not np.array_equal(clean, sketchy)
    near_clean = ndimage.binary_dilation(clean, iterations=4)
    assert (sketchy & ~near_clean).sum() < 0.05 * sketchy.sum()


def test_trace_chains_orders_a_closed_ring():
    ring = np.zeros((20, 20), bool)
    ring[5, 5:15] = ring[14, 5:15] = ring[5:15, 5] = ring[5:15, 14] = True
    chains = line_finding.trace_chains(ring)
    assert len(chains) == 1
    chain = chains[0]
    assert len(chain) == ring.sum() + 1 and np.array_equal(chain[0], chain[-1])
    assert np.abs(np.diff(chain, axis=0)).max() <= 1


def test_unknown_style_is_refused(block):
    with pytest.raises(ValueError, match="unknown sketch style"):
        sketches.draw_sketches(block[2], np.random.default_rng(0), ["clean", "watercolour"])


def test_empty_view_gives_empty_ink():
    maps = render_maps(*sdf_mesh(sphere), RES, tuple(INPUT_VIEWS.values()))
    maps.mask[:] = 0.0
    assert not sketches.draw_sketches(maps, np.random.default_rng(0)).any()


@pytest.mark.slow
@pytest.mark.parametrize("style", ["clean", "sketchy"])
def test_pipeline_rebuilds_the_shape_from_sketches(style):
    """The hull pipeline consumes the sketches: its silhouettes match the true ones."""
    vertices, faces = sdf_mesh(step_block)
    ink = sketches.sketch_mesh(vertices, faces, np.random.default_rng(1), styles=[style])[0]
    result = pipeline.reconstruct_images({"front": ink[0], "side": ink[1]}, backend="hull", detail="low")
    for name in ("front", "side"):
        truth = render_maps(vertices, faces, 256, (INPUT_VIEWS[name],)).mask[0] > 0.5
        assert metrics.silhouette_iou(result.vertices, result.faces, truth, INPUT_VIEWS[name]) > 0.9, name

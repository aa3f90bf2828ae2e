import numpy as np
import pytest

from model_server.sketch.rasterize import rasterize_strokes
from model_server.sketch.silhouette import MIN_THIN_WIDTH_PX, fill_silhouette, read_silhouette, signed_distance


@pytest.mark.parametrize("res", [128, 256])
@pytest.mark.parametrize("width", [1.0, 1.5, 2.0, 3.0, 4.0, 8.0])
def test_filled_circle_is_faithful_to_the_drawn_outline(width, res, circle):
    mask = fill_silhouette(rasterize_strokes([circle(0.6)], res=res, width_px=width))
    radius_px = np.sqrt(mask.sum() / np.pi)
    assert radius_px == pytest.approx(0.6 * res / 2, abs=0.25)  # the edge on the line's middle, however wide


def test_a_line_gone_over_twice_neither_grows_nor_shrinks_the_fill(circle):
    once = fill_silhouette(rasterize_strokes([circle(0.6)]))
    twice = fill_silhouette(rasterize_strokes([circle(0.6), circle(0.6, 0.006, 0.004)]))
    assert abs(int(twice.sum()) - int(once.sum())) <= 0.01 * once.sum()


def test_square_fills_exactly(polygon):
    mask = fill_silhouette(rasterize_strokes([polygon([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)])]))
    assert abs(int(mask.sum()) - 128 * 128) <= 2 * 128


def test_small_gap_is_closed_and_interior_lines_are_filled_over(circle):
    broken = circle(0.6)[8:]                       # ~19 px gap
    crease = np.array([[-0.3, 0.0, 1.0], [0.3, 0.0, 1.0]])
    whole = fill_silhouette(rasterize_strokes([circle(0.6)]))
    mask = fill_silhouette(rasterize_strokes([broken, crease]))
    assert (mask & whole).sum() / (mask | whole).sum() > 0.98


def test_an_open_scribble_is_a_thin_part_not_an_area():
    wide_open_v = np.array([[-0.8, -0.8, 1.0], [0.0, 0.8, 1.0], [0.8, -0.8, 1.0]])
    silhouette = read_silhouette(rasterize_strokes([wide_open_v]))
    assert silhouette.mask.any() and silhouette.thin.sum() >= 0.95 * silhouette.mask.sum()
    assert silhouette.mask.sum() < 6 * 2 * 230                     # a line a few pixels wide, nothing filled
    widths = silhouette.mask[64:192].sum(axis=1)                   # each row crosses both arms
    assert widths.min() >= 2 * MIN_THIN_WIDTH_PX
    assert not fill_silhouette(np.zeros((256, 256), np.float32)).any()


def test_a_single_line_becomes_a_solid_at_least_the_minimum_width():
    stem = np.array([[0.0, -0.6, 0.3], [0.0, 0.6, 0.3]])            # light pressure: a thin line
    mask = fill_silhouette(rasterize_strokes([stem]))
    columns = mask[60:196].sum(axis=1)
    assert columns.min() >= MIN_THIN_WIDTH_PX and columns.max() <= MIN_THIN_WIDTH_PX + 2
    assert mask[:, 128].sum() == pytest.approx(0.6 * 2 * 128, abs=6)


def test_thin_parts_join_the_area_they_touch(circle):
    """A lamp: a round shade, a stem drawn as one line, a flat base drawn as a narrow outline."""
    shade = circle(0.35, 0.0, 0.45)
    stem = np.array([[0.0, 0.1, 1.0], [0.0, -0.75, 1.0]])
    base = np.array([[-0.4, -0.75, 1.0], [0.4, -0.75, 1.0], [0.4, -0.8, 1.0], [-0.4, -0.8, 1.0], [-0.4, -0.75, 1.0]])
    silhouette = read_silhouette(rasterize_strokes([shade, stem, base]))
    assert silhouette.mask[128 - int(0.45 * 128), 128]               # shade filled
    assert silhouette.mask[128 + int(0.4 * 128), 126:131].any()      # stem kept
    assert silhouette.thin[128 + int(0.4 * 128), 126:131].any() and not silhouette.thin[70, 128]
    assert silhouette.mask[128 + int(0.77 * 128), 80:176].all()      # base kept across its width


def test_an_overshoot_is_not_a_part(circle, polygon):
    square = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    clean = fill_silhouette(rasterize_strokes([polygon(square)]))
    tail = np.array([[0.5, 0.5, 1.0], [0.5, 0.545, 1.0]])            # the right side drawn on, 4.5% past the corner
    sloppy = fill_silhouette(rasterize_strokes([polygon(square), tail]))
    assert (sloppy & ~clean).sum() <= 12                            # at most a corner's worth, no spur
    assert not read_silhouette(rasterize_strokes([polygon(square), tail])).thin.any()


def test_specks_are_dropped_but_separate_parts_kept(circle):
    ink = rasterize_strokes([circle(0.3, -0.5), circle(0.3, 0.5), np.array([[0.0, 0.9, 1.0]])])
    mask = fill_silhouette(ink)
    assert mask[128, 64] and mask[128, 192] and not mask[:20].any()


def test_signed_distance_is_negative_inside_and_zero_on_the_edge():
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    sdf = signed_distance(mask, pixel_size=0.5)
    assert sdf[32, 32] == pytest.approx(-7.75) and sdf[32, 16] == pytest.approx(-0.25)
    assert sdf[32, 15] == pytest.approx(0.25) and sdf[0, 32] > 0

import numpy as np
import pytest

from model_server.sketch.rasterize import rasterize_strokes
from model_server.sketch.silhouette import fill_silhouette, signed_distance


@pytest.mark.parametrize("width", [2.0, 4.0, 8.0])
def test_filled_circle_is_faithful_to_the_drawn_outline(width, circle):
    mask = fill_silhouette(rasterize_strokes([circle(0.6)], width_px=width))
    radius_px = np.sqrt(mask.sum() / np.pi)
    assert radius_px == pytest.approx(0.6 * 128, abs=1.0)  # no net growth or shrink beyond a pixel


def test_square_fills_exactly(polygon):
    mask = fill_silhouette(rasterize_strokes([polygon([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)])]))
    assert abs(int(mask.sum()) - 128 * 128) <= 2 * 128


def test_small_gap_is_closed_and_interior_lines_are_filled_over(circle):
    broken = circle(0.6)[8:]                       # ~19 px gap
    crease = np.array([[-0.3, 0.0, 1.0], [0.3, 0.0, 1.0]])
    whole = fill_silhouette(rasterize_strokes([circle(0.6)]))
    mask = fill_silhouette(rasterize_strokes([broken, crease]))
    assert (mask & whole).sum() / (mask | whole).sum() > 0.98


def test_open_scribble_encloses_nothing():
    wide_open_v = np.array([[-0.8, -0.8, 1.0], [0.0, 0.8, 1.0], [0.8, -0.8, 1.0]])
    assert not fill_silhouette(rasterize_strokes([wide_open_v])).any()
    assert not fill_silhouette(np.zeros((256, 256), np.float32)).any()


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

import numpy as np
import pytest

from model_server.sketch.rasterize import rasterize_strokes


def test_line_is_antialiased_and_two_pixels_wide():
    ink = rasterize_strokes([np.array([[-0.5, 0.1, 1.0], [0.5, 0.1, 1.0]])])
    assert ink.shape == (256, 256) and ink.dtype == np.float32
    column = ink[:, 128]
    assert column.sum() == pytest.approx(2.0, abs=0.05)        # width 2 px at full pressure
    assert 0.0 < column[(column > 0) & (column < 1)].size <= 2  # soft edges, at most one per side
    assert ink[:, :60].max() == 0.0                             # nothing beyond the caps


def test_width_follows_pressure():
    light = rasterize_strokes([np.array([[-0.5, 0.0, 0.1], [0.5, 0.0, 0.1]])])
    heavy = rasterize_strokes([np.array([[-0.5, 0.0, 1.0], [0.5, 0.0, 1.0]])])
    assert light[:, 128].sum() < 0.7 * heavy[:, 128].sum()


def test_single_point_stroke_is_a_dot_and_outside_points_are_clipped():
    ink = rasterize_strokes([np.array([[0.0, 0.0, 1.0]]), np.array([[2.0, 2.0, 1.0], [3.0, 2.0, 1.0]])])
    assert 0 < np.count_nonzero(ink) <= 16
    assert ink[126:130, 126:130].max() > 0.5


def test_hundred_thousand_points_rasterise():
    t = np.linspace(0.0, 2.0 * np.pi, 100_000)
    spiral = np.stack([0.1 * t * np.cos(40 * t), 0.1 * t * np.sin(40 * t), np.ones_like(t)], axis=1)
    ink = rasterize_strokes([spiral])
    assert ink.max() == 1.0 and ink.sum() > 1000

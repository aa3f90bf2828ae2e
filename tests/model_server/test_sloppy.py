"""Sloppy drawings: each variant does what it says (gap sizes, overlapping pieces that cover
the outline, lines kept inside), the same seed gives the same drawing, and masks trace to
outlines on the right canvas."""

from __future__ import annotations

import numpy as np
import pytest

from model_server.geometry.views import FRONT, plane_grid
import sloppy
from model_server.sketch.rasterize import rasterize_strokes
from model_server.sketch.silhouette import fill_silhouette, iou


def circle(radius: float = 0.5, n: int = 400) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n)
    return np.stack([radius * np.cos(t), radius * np.sin(t), np.ones(n)], axis=1)


def ring() -> list[np.ndarray]:
    """An outline with a hole: a square with a smaller square inside."""
    outer = np.array([[-0.6, -0.6], [0.6, -0.6], [0.6, 0.6], [-0.6, 0.6], [-0.6, -0.6]])
    return [np.concatenate([outer, np.ones((5, 1))], axis=1), np.concatenate([0.3 * outer, np.full((5, 1), 0.5)], axis=1)]


U_SHAPE = np.array([[-0.6, -0.6, 1], [-0.2, -0.6, 1], [-0.2, 0.3, 1], [0.2, 0.3, 1], [0.2, -0.6, 1], [0.6, -0.6, 1],
                    [0.6, 0.6, 1], [-0.6, 0.6, 1], [-0.6, -0.6, 1]], float)


def dense(strokes: list[np.ndarray], step: float = 0.002) -> np.ndarray:
    """Points every ``step`` along every stroke."""
    out = []
    for s in strokes:
        for a, b in zip(s[:-1, :2], s[1:, :2]):
            n = max(1, int(np.ceil(np.linalg.norm(b - a) / step)))
            out.append(a + np.linspace(0.0, 1.0, n, endpoint=False)[:, None] * (b - a))
        out.append(s[-1:, :2])
    return np.concatenate(out)


def distance_to(points: np.ndarray, strokes: list[np.ndarray]) -> np.ndarray:
    """Distance from each point to the nearest stroke segment (or single-point stroke)."""
    a = np.concatenate([s[:-1, :2] if len(s) > 1 else s[:, :2] for s in strokes])
    b = np.concatenate([s[1:, :2] if len(s) > 1 else s[:, :2] for s in strokes])
    p = np.asarray(points, np.float64)[:, None, :]
    d = b - a
    t = np.clip(((p - a) * d).sum(axis=2) / np.maximum((d * d).sum(axis=1), 1e-300), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * d), axis=2).min(axis=1)


def test_size_and_closedness():
    assert sloppy.sketch_size([circle(0.5)]) == pytest.approx(1.0, abs=1e-4)
    assert sloppy.sketch_size([U_SHAPE]) == pytest.approx(1.2)
    assert sloppy.is_closed(U_SHAPE, 1.2) and not sloppy.is_closed(U_SHAPE[:-1], 1.2)
    assert sloppy.sketch_size([]) == 0.0


@pytest.mark.parametrize("count", [1, 2, 3])
def test_gaps_are_the_asked_size_and_nothing_else_is_lost(count):
    stroke = circle(0.5)
    cut = sloppy.with_gaps([stroke], 0.03, np.random.default_rng(count), count=count, shortest=1.0)
    assert len(cut) == count
    size = sloppy.sketch_size([stroke])
    removed = sloppy.stroke_length(stroke) - sum(sloppy.stroke_length(s) for s in cut)
    assert removed == pytest.approx(count * 0.03 * size, rel=1e-3)
    for i, piece in enumerate(cut):          # on a circle this big the chord is the removed length
        nxt = cut[(i + 1) % len(cut)]
        assert np.linalg.norm(piece[-1, :2] - nxt[0, :2]) == pytest.approx(0.03 * size, rel=2e-3)
    assert np.all(distance_to(dense(cut), [stroke]) < 1e-3)   # what is left lies on the outline


def test_gaps_default_to_one_to_three_no_larger_than_the_fraction():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        cut = sloppy.with_gaps([U_SHAPE], 0.03, rng)
        assert 1 <= len(cut) <= 3
        removed = sloppy.stroke_length(U_SHAPE) - sum(sloppy.stroke_length(s) for s in cut)
        assert 0.5 * 0.03 * 1.2 * len(cut) - 1e-9 <= removed <= 0.03 * 1.2 * len(cut) + 1e-9
        ends = [(cut[i][-1, :2], cut[(i + 1) % len(cut)][0, :2]) for i in range(len(cut))]
        assert all(np.linalg.norm(a - b) <= 0.03 * 1.2 + 1e-9 for a, b in ends)


def test_gaps_on_open_strokes_stay_within_them():
    line = np.stack([np.linspace(-0.5, 0.5, 50), np.zeros(50), np.ones(50)], axis=1)
    cut = sloppy.with_gaps([line], 0.05, np.random.default_rng(3), count=2, shortest=1.0)
    assert len(cut) == 3 and cut[0][0, 0] == pytest.approx(-0.5) and cut[-1][-1, 0] == pytest.approx(0.5)
    assert sum(sloppy.stroke_length(s) for s in cut) == pytest.approx(1.0 - 2 * 0.05)


def test_pieces_overlap_and_cover_the_outline():
    rng = np.random.default_rng(1)
    for stroke in (circle(0.5), U_SHAPE):
        pieces = sloppy.in_pieces([stroke], rng, pieces=(3, 6), overlap=0.03)
        size = sloppy.sketch_size([stroke])
        assert 3 <= len(pieces) <= 6
        assert np.all(distance_to(dense([stroke], 0.005), pieces) < 1e-3)      # covered
        assert np.all(distance_to(dense(pieces), [stroke]) < 1e-3)            # nothing off the outline
        extra = sum(sloppy.stroke_length(p) for p in pieces) - sloppy.stroke_length(stroke)
        assert 0.5 * 0.03 * size * len(pieces) - 1e-6 <= extra <= 0.03 * size * len(pieces) + 1e-6
        for piece in pieces:                  # each piece begins or ends on top of another piece
            others = [p for p in pieces if p is not piece]
            assert min(distance_to(piece[[0, -1], :2], others)) < 1e-3


def test_open_strokes_in_pieces_keep_their_ends():
    line = np.stack([np.linspace(0.0, 1.0, 30), np.linspace(0.0, 0.5, 30)], axis=1)
    pieces = sloppy.in_pieces([line], np.random.default_rng(2), pieces=(4, 4))
    ends = np.concatenate([p[[0, -1]] for p in pieces])
    assert np.min(np.linalg.norm(ends - line[0], axis=1)) < 1e-9 and np.min(np.linalg.norm(ends - line[-1], axis=1)) < 1e-9
    assert all(p.shape[1] == 2 for p in pieces)


def test_overshoot_breaks_corners_and_runs_past_them():
    box = U_SHAPE
    strokes = sloppy.with_overshoot([box], np.random.default_rng(0), fraction=0.04, shortest=1.0)
    assert len(strokes) == 8                         # one stroke per side of the U
    size = sloppy.sketch_size([box])
    for s in strokes:
        assert sloppy.stroke_length(s) > 0.08 * size
        assert np.linalg.norm(s[1, :2] - s[0, :2]) == pytest.approx(0.04 * size, rel=1e-6)
    corners = box[:-1, :2]
    tips = np.concatenate([s[[0, -1], :2] for s in strokes])
    assert np.all(distance_to(tips, [box]) <= 0.04 * size + 1e-9)
    assert np.all(np.min(np.linalg.norm(tips[:, None] - corners[None], axis=2), axis=1) > 0.03 * size)


def test_smooth_outlines_overshoot_in_two_or_three_strokes():
    for seed in range(5):
        strokes = sloppy.with_overshoot([circle(0.5)], np.random.default_rng(seed))
        assert 2 <= len(strokes) <= 3


def test_drawn_twice_is_offset_about_one_percent():
    stroke = circle(0.5)
    twice = sloppy.drawn_twice([stroke], np.random.default_rng(0), offset=0.01, jitter=0.003)
    assert len(twice) == 2 and np.array_equal(twice[0], stroke)
    shift = np.linalg.norm(twice[1][:, :2] - stroke[:, :2], axis=1)
    assert 0.004 < shift.mean() < 0.016 and shift.max() < 0.01 * 1.3 + 2 * 0.003 * np.sqrt(2)
    assert shift.std() > 0                           # jittered, not just moved
    assert np.array_equal(twice[1][:, 2], stroke[:, 2])


@pytest.mark.parametrize("outline", ["U", "ring"])
def test_hatching_and_creases_stay_inside(outline):
    strokes = [U_SHAPE] if outline == "U" else ring()
    rng = np.random.default_rng(4)
    hatched = sloppy.with_hatching(strokes, rng, spacing=0.04, inset=0.02)
    lines = hatched[len(strokes):]
    assert len(lines) >= 3 and all(np.array_equal(a, b) for a, b in zip(hatched, strokes))
    points = dense(lines, 0.005)
    assert np.all(sloppy.inside(strokes, points))
    assert np.all(distance_to(points, strokes) >= 0.02 * 1.2 * 0.999)
    directions = np.array([(line[-1, :2] - line[0, :2]) / np.linalg.norm(line[-1, :2] - line[0, :2]) for line in lines])
    assert np.allclose(np.abs(directions @ directions[0]), 1.0)      # parallel
    creases = sloppy.with_creases(strokes, rng, count=3)[len(strokes):]
    assert len(creases) == 3
    for line in creases:
        assert np.all(sloppy.inside(strokes, dense([line], 0.005)[1:-1]))
        assert np.all(distance_to(line[[0, -1], :2], strokes) < 1e-6)   # from outline to outline


def test_lines_inside_need_a_closed_outline():
    with pytest.raises(ValueError):
        sloppy.with_hatching([U_SHAPE[:-2]], np.random.default_rng(0))


def test_stray_dot_lies_outside_and_clear_of_the_outline():
    for seed in range(5):
        strokes = sloppy.with_stray_dot([U_SHAPE], np.random.default_rng(seed), margin=0.05, clearance=0.03)
        dot = strokes[-1]
        assert len(strokes) == 2 and dot.shape == (1, 3)
        assert not sloppy.inside([U_SHAPE], dot[:, :2])[0]
        assert distance_to(dot[:, :2], [U_SHAPE])[0] >= 0.03 * 1.2
        assert np.all(np.abs(dot[0, :2]) <= 0.6 + 0.05 * 1.2 + 1e-9)


@pytest.mark.parametrize("make", [
    lambda s, rng: sloppy.with_gaps(s, 0.03, rng),
    lambda s, rng: sloppy.with_overshoot(s, rng),
    lambda s, rng: sloppy.drawn_twice(s, rng),
    lambda s, rng: sloppy.in_pieces(s, rng),
    lambda s, rng: sloppy.with_hatching(s, rng),
    lambda s, rng: sloppy.with_creases(s, rng),
    lambda s, rng: sloppy.with_stray_dot(s, rng),
    lambda s, rng: sloppy.sloppy_drawing(s, rng, chance=1.0),
], ids=["gaps", "overshoot", "twice", "pieces", "hatching", "creases", "dot", "mix"])
def test_same_seed_same_drawing_and_input_untouched(make):
    strokes = ring()
    before = [s.copy() for s in strokes]
    a = make(strokes, np.random.default_rng(7))
    b = make(strokes, np.random.default_rng(7))
    c = make(strokes, np.random.default_rng(8))
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(a) != len(c) or not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert all(np.array_equal(x, y) for x, y in zip(strokes, before))
    assert all(s.ndim == 2 and s.shape[1] == 3 and np.all(np.isfinite(s)) for s in a)


def test_outline_from_mask_runs_half_a_pixel_outside_and_keeps_holes():
    res = 64
    u, v = plane_grid(FRONT, res)
    mask = (np.abs(u) < 0.5) & (np.abs(v) < 0.4) & ~((np.abs(u) < 0.2) & (np.abs(v) < 0.1))
    speck = mask.copy()
    speck[5, 5] = True
    loops = sloppy.outline_from_mask(speck, min_area_px=2.0, smoothing=0)
    assert len(loops) == 2 and all(sloppy.is_closed(s, 1.0) for s in loops)
    outer, hole = loops
    pixel = 2.0 / res
    lo, hi = u[mask].min() - 0.5 * pixel, u[mask].max() + 0.5 * pixel
    assert outer[:, 0].min() == pytest.approx(lo) and outer[:, 0].max() == pytest.approx(hi)
    assert np.array_equal(sloppy.inside(loops, np.stack([u.ravel(), v.ravel()], 1)).reshape(res, res), mask)
    assert hole[:, 0].max() < 0.25


def test_outline_from_mask_redraws_the_same_silhouette():
    u, v = plane_grid(FRONT, 256)
    mask = ((u / 0.6) ** 2 + (v / 0.4) ** 2 < 1.0) | ((np.abs(u + 0.3) < 0.015) & (v < 0.0) & (v > -0.8))  # with a thin leg
    strokes = sloppy.outline_from_mask(mask)
    assert len(strokes) == 1 and sloppy.is_closed(strokes[0], 1.0)
    assert iou(fill_silhouette(rasterize_strokes(strokes)), mask) > 0.97
    assert sloppy.outline_from_mask(np.zeros((32, 32), bool)) == []

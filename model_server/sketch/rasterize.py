"""Strokes -> ink images at the network resolution.

An ink image is float32 (res, res) in [0, 1], 1 = full ink, on a view's square canvas
(row 0 = top). Strokes are rasterised as anti-aliased capsules whose width follows pen
pressure; everything is vectorised so 100k points take a fraction of a second.
"""

from __future__ import annotations

import numpy as np

from model_server.geometry.views import CANVAS_EXTENT, RESOLUTION, plane_to_pixel

STROKE_WIDTH_PX = 2.0   # line width at full pressure, in pixels of the res x res canvas
MIN_PRESSURE_WIDTH = 0.5  # fraction of the width kept at zero pressure
MAX_PIECE_PX = 4.0       # long segments are split so each piece touches few pixels
MIN_SPACING_PX = 0.5     # points closer than this along a stroke are merged
MAX_CANDIDATES = 1 << 22  # pixel candidates handled per vectorised batch


def rasterize_strokes(strokes: list[np.ndarray], extent: float = CANVAS_EXTENT, res: int = RESOLUTION,
                      width_px: float = STROKE_WIDTH_PX) -> np.ndarray:
    """Anti-aliased ink image of strokes, each an (N, 2) or (N, 3) array of (u, v[, pressure])
    in view-plane units on the canvas [-extent, extent]^2."""
    a, b, radius = _segments(strokes, extent, res, width_px)
    image = np.zeros(res * res, np.float32)
    if len(a):
        a, b, radius = _split_long(a, b, radius)
        _draw_capsules(image, a, b, radius, res)
    return image.reshape(res, res)


def _segments(strokes: list[np.ndarray], extent: float, res: int, width_px: float):
    """Segment endpoints in continuous pixel coordinates (x = col, y = row) and radii.

    Points closer than MIN_SPACING_PX along a stroke are merged first, so densely
    sampled strokes cost no more than their drawn length."""
    arrays = [np.asarray(s, np.float64).reshape(len(s), -1) for s in strokes if len(s)]
    if not arrays:
        return np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0)
    lengths = np.array([len(s) for s in arrays])
    pts = np.concatenate([s[:, :2] for s in arrays])
    pressure = np.concatenate([s[:, 2] if s.shape[1] > 2 else np.ones(len(s)) for s in arrays])
    stroke = np.repeat(np.arange(len(arrays)), lengths)
    rows, cols = plane_to_pixel(pts[:, 0], pts[:, 1], extent, res)
    xy = np.stack([cols, rows], axis=1)

    first = np.ones(len(xy), bool)
    first[1:] = stroke[1:] != stroke[:-1]
    last = np.roll(first, -1)
    step = np.zeros(len(xy))
    step[1:] = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    step[first] = 0.0
    arclength = np.cumsum(step)
    arclength -= np.repeat(arclength[first], lengths)
    bucket = np.floor(arclength / MIN_SPACING_PX)
    keep = first | last
    keep[1:] |= bucket[1:] != bucket[:-1]
    xy, pressure, stroke, first = xy[keep], pressure[keep], stroke[keep], first[keep]

    single = first & np.roll(first, -1)  # one-point strokes become dots
    single[-1] = first[-1]
    a_idx = np.concatenate([np.flatnonzero(~first) - 1, np.flatnonzero(single)])
    b_idx = np.concatenate([np.flatnonzero(~first), np.flatnonzero(single)])
    segment_pressure = np.clip(0.5 * (pressure[a_idx] + pressure[b_idx]), 0.0, 1.0)
    radius = 0.5 * width_px * (MIN_PRESSURE_WIDTH + (1.0 - MIN_PRESSURE_WIDTH) * segment_pressure)
    return xy[a_idx], xy[b_idx], radius


def _split_long(a: np.ndarray, b: np.ndarray, radius: np.ndarray):
    """Split segments longer than MAX_PIECE_PX into equal pieces."""
    pieces = np.maximum(1, np.ceil(np.linalg.norm(b - a, axis=1) / MAX_PIECE_PX)).astype(np.int64)
    if np.all(pieces == 1):
        return a, b, radius
    seg = np.repeat(np.arange(len(a)), pieces)
    k = np.arange(len(seg)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    n = pieces[seg]
    d = b[seg] - a[seg]
    return a[seg] + (k / n)[:, None] * d, a[seg] + ((k + 1) / n)[:, None] * d, radius[seg]


def _draw_capsules(image: np.ndarray, a: np.ndarray, b: np.ndarray, radius: np.ndarray, res: int) -> None:
    """Max-composite the coverage of each capsule into the flat image, in batches."""
    pad = radius + 1.0
    lo = np.clip(np.floor(np.minimum(a, b) - pad[:, None]), 0, res - 1).astype(np.int64)
    hi = np.clip(np.ceil(np.maximum(a, b) + pad[:, None]), -1, res - 1).astype(np.int64)
    size = np.maximum(hi - lo + 1, 0)
    count = size[:, 0] * size[:, 1]
    keep = count > 0
    a, d, radius, lo, size, count = a[keep], (b - a)[keep], radius[keep], lo[keep], size[keep], count[keep]
    inv_length2 = 1.0 / np.maximum((d * d).sum(axis=1), 1e-12)
    batch_end = np.searchsorted(np.cumsum(count), np.arange(1, count.sum() // MAX_CANDIDATES + 2) * MAX_CANDIDATES)
    start = 0
    for stop in np.unique(np.clip(batch_end + 1, 1, len(a))):
        c = count[start:stop]
        seg = np.repeat(np.arange(start, stop), c)
        local = np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c)
        w = size[seg, 0]
        px = (lo[seg, 0] + local % w).astype(np.float32)
        py = (lo[seg, 1] + local // w).astype(np.float32)
        rx, ry = px - a[seg, 0].astype(np.float32), py - a[seg, 1].astype(np.float32)
        dx, dy = d[seg, 0].astype(np.float32), d[seg, 1].astype(np.float32)
        t = np.clip((rx * dx + ry * dy) * inv_length2[seg].astype(np.float32), 0.0, 1.0)
        coverage = np.clip(radius[seg].astype(np.float32) + 0.5 - np.hypot(rx - t * dx, ry - t * dy), 0.0, 1.0)
        hit = coverage > 0
        pixel = (py * res + px).astype(np.int64)
        np.maximum.at(image, pixel[hit], coverage[hit])
        start = stop

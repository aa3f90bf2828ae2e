"""Synthetic line drawings of a shape's input views, in several hand-drawn styles.

The lines are those :mod:`model_server.learning.data.lines` finds in ground-truth renders
of the input views (silhouette, creases, depth discontinuities, suggestive contours). Their
chains are smoothed, turned into strokes and drawn with
:func:`model_server.sketch.rasterize.rasterize_strokes`, so ink images share the pipeline's
convention (float32 in [0, 1], 1 = ink). Styles differ in what happens to the strokes:
"clean" keeps them steady; "sketchy" adds smooth jitter, overshoots, gaps, pressure
(width) variation and occasional double strokes; "suggestive" adds the interior lines
with milder noise. Each view of each style is also shifted and scaled by a pixel or so
(misregistration between views). All randomness comes from the caller's generator.

Lengths are given in pixels of a 256-pixel canvas and scaled to the actual resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from model_server.geometry.maps import Maps
from model_server.geometry.raycast import render_maps
from model_server.geometry.views import CANVAS_EXTENT, INPUT_VIEWS, RESOLUTION, pixel_to_plane
from model_server.learning.data.lines import REFERENCE_RES, ViewLines, trace_view
from model_server.sketch.rasterize import rasterize_strokes

STYLES: tuple[str, ...] = ("clean", "sketchy", "suggestive")

STROKE_WOBBLE_PX = 60.0      # wavelength of a stroke's own wobble
PRESSURE_WAVELENGTH_PX = 50.0
TAPER_PX = 4.0               # pressure builds up and fades over this length at stroke ends
FIELD_CELLS = 6              # the displacement field's wavelength is about 1/6 of the canvas


@dataclass(frozen=True)
class StyleParams:
    """How one style turns chains into strokes (lengths in pixels at 256)."""

    width: tuple[float, float]          # line width range at full pressure (one value per drawing)
    pressure: tuple[float, float]       # per-stroke base pressure range
    pressure_wobble: float              # smooth pressure change along a stroke
    field_jitter: float                 # amplitude of the smooth displacement field over the canvas
    stroke_jitter: float                # amplitude of each stroke's own wobble
    stroke_length: tuple[float, float]  # chains are cut into strokes of this length
    gap: float                          # chance that a stroke ends in a gap ...
    gap_length: tuple[float, float]     # ... of this length
    overshoot: float                    # chance that a stroke end runs on ...
    overshoot_length: tuple[float, float]  # ... by this much
    double: float                       # chance that a stroke is drawn twice
    misregistration: float              # largest shift of the whole view, and of its rim by scaling (px)
    suggestive: bool                    # draws suggestive contours


CLEAN = StyleParams(width=(1.6, 2.4), pressure=(1.0, 1.0), pressure_wobble=0.0, field_jitter=0.0,
                    stroke_jitter=0.0, stroke_length=(1e9, 1e9), gap=0.0, gap_length=(0.0, 0.0),
                    overshoot=0.0, overshoot_length=(0.0, 0.0), double=0.0, misregistration=0.4,
                    suggestive=False)
SKETCHY = StyleParams(width=(2.0, 3.0), pressure=(0.45, 1.0), pressure_wobble=0.3, field_jitter=1.2,
                      stroke_jitter=0.7, stroke_length=(30.0, 140.0), gap=0.35, gap_length=(1.0, 4.0),
                      overshoot=0.45, overshoot_length=(1.5, 6.0), double=0.15, misregistration=1.0,
                      suggestive=False)
SUGGESTIVE = StyleParams(width=(1.6, 2.6), pressure=(0.6, 1.0), pressure_wobble=0.2, field_jitter=0.6,
                         stroke_jitter=0.4, stroke_length=(40.0, 200.0), gap=0.15, gap_length=(1.0, 3.0),
                         overshoot=0.25, overshoot_length=(1.0, 4.0), double=0.05, misregistration=0.75,
                         suggestive=True)
STYLE_PARAMS: dict[str, StyleParams] = {"clean": CLEAN, "sketchy": SKETCHY, "suggestive": SUGGESTIVE}

# --- Public API -------------------------------------------------------------------------------

def sketch_mesh(vertices: np.ndarray, faces: np.ndarray, rng: np.random.Generator, res: int = RESOLUTION,
                styles: Sequence[str] = STYLES) -> np.ndarray:
    """Ink images (len(styles), 3, res, res) of a canonical mesh's front, side and top views."""
    maps = render_maps(vertices, faces, res, tuple(INPUT_VIEWS.values()))
    return draw_sketches(maps, rng, styles)


def draw_sketches(maps: Maps, rng: np.random.Generator, styles: Sequence[str] = STYLES) -> np.ndarray:
    """Ink images (len(styles), V, R, R) float32 from the maps of V input views (front, side, top order)."""
    unknown = [s for s in styles if s not in STYLE_PARAMS]
    if unknown:
        raise ValueError(f"unknown sketch style(s) {unknown}; choose from {', '.join(STYLES)}")
    suggestive = any(STYLE_PARAMS[s].suggestive for s in styles)
    lines = [trace_view(maps.depth[i], maps.normal[i], maps.mask[i] > 0.5, suggestive) for i in range(maps.num_views)]
    out = np.zeros((len(styles), maps.num_views, maps.resolution, maps.resolution), np.float32)
    for s, style in enumerate(styles):
        for v, view_lines in enumerate(lines):
            out[s, v] = draw_view(view_lines, STYLE_PARAMS[style], rng)
    return out


def draw_view(lines: ViewLines, params: StyleParams, rng: np.random.Generator) -> np.ndarray:
    """One ink image (R, R) of a view's lines in a style."""
    scale = lines.res / REFERENCE_RES
    width = max(1.2, rng.uniform(*params.width) * scale)
    chains = lines.silhouette + lines.interior + (lines.suggestive if params.suggestive else [])
    pieces: list[np.ndarray] = []
    for chain in chains:
        pieces += _cut_into_strokes(_smooth(chain), params, scale, rng)
    if not pieces:
        return np.zeros((lines.res, lines.res), np.float32)
    strokes = _Strokes(pieces)
    points = _displacement_field(strokes.points, params.field_jitter * scale, lines.res, rng)
    if params.stroke_jitter > 0:
        wobble = strokes.noise(STROKE_WOBBLE_PX * scale, rng) * params.stroke_jitter * scale
        points = points + strokes.normals() * wobble[:, None]
    pressure = strokes.pressure(params, scale, rng)
    points = _misregister(points, params.misregistration * scale, lines.res, rng)
    plane = np.concatenate([_to_plane(points, lines.res), pressure[:, None]], axis=1)
    return rasterize_strokes(strokes.split(plane), CANVAS_EXTENT, lines.res, width)


# --- Drawing strokes ------------------------------------------------------------------------------

def _smooth(chain: np.ndarray) -> np.ndarray:
    """Two passes of a [1, 2, 1] filter along the chain (ends kept), taking off the pixel
    staircase, then every other point (the rasteriser needs no more)."""
    closed = len(chain) > 3 and np.array_equal(chain[0], chain[-1])
    p = chain[:-1] if closed else chain
    if len(p) < 3:
        return chain
    for _ in range(2):
        if closed:
            p = 0.25 * (np.roll(p, 1, axis=0) + 2.0 * p + np.roll(p, -1, axis=0))
        else:
            p = np.concatenate([p[:1], 0.25 * (p[:-2] + 2.0 * p[1:-1] + p[2:]), p[-1:]])
    if closed:
        return np.concatenate([p[::2], p[:1]])
    return np.concatenate([p[:-1:2], p[-1:]])


def _arclength(points: np.ndarray) -> np.ndarray:
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def _cut_into_strokes(chain: np.ndarray, params: StyleParams, scale: float,
                      rng: np.random.Generator) -> list[np.ndarray]:
    """Cut a chain (N, 2) into strokes: random lengths, sometimes a gap after a stroke,
    sometimes an overshoot at an end, sometimes a second, offset stroke over the first."""
    if len(chain) < 2:
        return [chain]
    s = _arclength(chain)
    total = s[-1]
    strokes, start = [], 0.0
    while True:
        end = min(total, start + rng.uniform(*params.stroke_length) * scale)
        gap = rng.uniform(*params.gap_length) * scale if rng.random() < params.gap else 0.0
        piece = _overshoot(_piece(chain, s, start, max(start, end - gap)), params, scale, rng)
        strokes.append(piece)
        if rng.random() < params.double:
            strokes.append(_offset(piece, rng.uniform(0.8, 2.0) * scale * rng.choice([-1.0, 1.0])))
        if end >= total:
            return strokes
        start = end


def _piece(chain: np.ndarray, s: np.ndarray, start: float, end: float) -> np.ndarray:
    """The part of a chain between arclengths ``start`` and ``end``, ends interpolated."""
    if start <= 0.0 and end >= s[-1]:
        return chain
    inner = (s > start) & (s < end)
    ends = np.stack([np.interp([start, end], s, chain[:, 0]), np.interp([start, end], s, chain[:, 1])], axis=1)
    return np.concatenate([ends[:1], chain[inner], ends[1:]])


def _overshoot(points: np.ndarray, params: StyleParams, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Sometimes run the stroke on past an end, along its end tangent."""
    if params.overshoot <= 0 or len(points) < 3 or np.array_equal(points[0], points[-1]):
        return points
    head, tail = points[:0], points[:0]
    if rng.random() < params.overshoot:
        head = points[:1] + _unit(points[0] - points[min(3, len(points) - 1)]) * rng.uniform(*params.overshoot_length) * scale
    if rng.random() < params.overshoot:
        tail = points[-1:] + _unit(points[-1] - points[max(-4, -len(points))]) * rng.uniform(*params.overshoot_length) * scale
    return np.concatenate([head, points, tail])


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 1e-9 else np.zeros_like(v)


def _offset(points: np.ndarray, distance: float) -> np.ndarray:
    """The polyline moved sideways by ``distance`` pixels, across its overall direction."""
    d = _unit(points[-1] - points[0])
    normal = np.array([-d[1], d[0]]) if d.any() else np.array([1.0, 0.0])
    return points + distance * normal


class _Strokes:
    """Many strokes' points in one array, so per-point work is vectorised across strokes."""

    def __init__(self, pieces: list[np.ndarray]):
        lengths = np.array([len(p) for p in pieces])
        self.points = np.concatenate(pieces)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        self.stroke = np.repeat(np.arange(len(pieces)), lengths)
        self.first = self.offsets[:-1][self.stroke]
        self.last = self.offsets[1:][self.stroke] - 1
        steps = np.zeros(len(self.points))
        steps[1:] = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        steps[self.offsets[:-1]] = 0.0
        along = np.cumsum(steps)
        self.arclength = along - along[self.first]
        self.length = self.arclength[self.last]

    @property
    def count(self) -> int:
        return len(self.offsets) - 1

    def normals(self) -> np.ndarray:
        """Unit normals (M, 2) from central differences within each stroke."""
        index = np.arange(len(self.points))
        t = self.points[np.minimum(index + 1, self.last)] - self.points[np.maximum(index - 1, self.first)]
        n = np.stack([-t[:, 1], t[:, 0]], axis=1)
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)

    def noise(self, wavelength: float, rng: np.random.Generator) -> np.ndarray:
        """Smooth noise of about unit amplitude along each stroke: three random sines each."""
        k = 2.0 * np.pi / (wavelength * rng.uniform(0.6, 1.6, (self.count, 3)))
        phase = rng.uniform(0.0, 2.0 * np.pi, (self.count, 3))
        return np.sin(self.arclength[:, None] * k[self.stroke] + phase[self.stroke]).sum(axis=1) / np.sqrt(3.0)

    def pressure(self, params: StyleParams, scale: float, rng: np.random.Generator) -> np.ndarray:
        """Pen pressure (M,) in [0, 1]: a base per stroke, a slow wobble, tapered ends."""
        base = rng.uniform(*params.pressure, self.count)[self.stroke]
        if params.pressure_wobble <= 0:
            return np.clip(base, 0.0, 1.0)
        pressure = base + params.pressure_wobble * self.noise(PRESSURE_WAVELENGTH_PX * scale, rng)
        to_end = np.minimum(self.arclength, self.length[self.stroke] - self.arclength)
        taper = np.minimum(1.0, 0.4 + 0.6 * to_end / (TAPER_PX * scale))
        return np.clip(pressure * taper, 0.0, 1.0)

    def split(self, values: np.ndarray) -> list[np.ndarray]:
        """Per-point values back into one array per stroke."""
        return np.split(values, self.offsets[1:-1])


def _displacement_field(points: np.ndarray, amplitude: float, res: int, rng: np.random.Generator) -> np.ndarray:
    """Points moved by a smooth random 2D displacement over the canvas (a few cells across)."""
    if amplitude <= 0:
        return points
    cells = FIELD_CELLS
    grid = rng.standard_normal((2, cells + 3, cells + 3))
    coords = (points / res * cells + 1.0).T
    shift = np.stack([ndimage.map_coordinates(g, coords, order=3, mode="nearest") for g in grid], axis=1)
    return points + amplitude * shift


def _misregister(points: np.ndarray, amount: float, res: int, rng: np.random.Generator) -> np.ndarray:
    """Shift and scale the whole drawing about the canvas centre by up to ``amount`` pixels."""
    if amount <= 0:
        return points
    centre = 0.5 * (res - 1)
    factor = 1.0 + rng.uniform(-1.0, 1.0) * amount / (0.5 * res)
    return centre + factor * (points - centre) + rng.uniform(-amount, amount, 2)


def _to_plane(points: np.ndarray, res: int) -> np.ndarray:
    """(row, col) pixel coordinates -> (u, v) on the [-1, 1] canvas."""
    return np.stack(pixel_to_plane(points[:, 0], points[:, 1], CANVAS_EXTENT, res), axis=1)

"""Sloppy versions of clean outline drawings, the way artists really draw: gaps, overshoots,
strokes drawn twice or in overlapping pieces, hatching and crease lines inside the outline,
a stray dot. Also clean outlines traced from a boolean silhouette mask.

Why: the pipeline must turn such drawings into the same shape as the clean one. These
functions make them reproducibly for the robustness tests and ``benchmarks/bench_pipeline.py``
(test support code: the product never draws sloppily). Pure numpy; every random choice comes from the caller's
``np.random.Generator``, so a seed gives the same drawing.

A view's drawing is a list of strokes, each an (N, 2) or (N, 3) array of (u, v[, pressure])
in view-plane units. A stroke is closed when its ends meet (within ``CLOSED_TOLERANCE`` of
the size). Lengths are fractions of the sketch's size: the larger side of the bounding box
of the view's strokes. Every function returns a new list and leaves its input alone; extra
columns (pressure) are interpolated where a stroke is cut and copied where it is extended.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from model_server.geometry.views import CANVAS_EXTENT, pixel_to_plane

Strokes = list[np.ndarray]

CLOSED_TOLERANCE = 1e-3   # stroke ends closer than this fraction of the size meet
TANGENT_LENGTH = 0.02     # end tangents and corners are read over this fraction of the size
CORNER_DEGREES = 40.0     # an outline turning more than this over TANGENT_LENGTH has a corner
CORNER_STEP = 1.0 / 400   # corners are looked for every this fraction of the size
LINE_SPACING = 0.01       # new straight lines get a point every this fraction of the size


# --- Measuring strokes ----------------------------------------------------------------------------

def sketch_size(strokes: Sequence[np.ndarray]) -> float:
    """The larger side of the bounding box of a view's strokes (0 for no points)."""
    points = [np.asarray(s, np.float64).reshape(len(s), -1)[:, :2] for s in strokes if len(s)]
    if not points:
        return 0.0
    return float(np.ptp(np.concatenate(points), axis=0).max())


def is_closed(stroke: np.ndarray, size: float) -> bool:
    """Whether a stroke's ends meet, within ``CLOSED_TOLERANCE`` of the sketch's ``size``."""
    s = np.asarray(stroke, np.float64)
    return len(s) > 3 and float(np.linalg.norm(s[0, :2] - s[-1, :2])) <= CLOSED_TOLERANCE * size


def stroke_length(stroke: np.ndarray) -> float:
    """The length of a stroke's polyline."""
    s = np.asarray(stroke, np.float64)
    return float(np.linalg.norm(np.diff(s[:, :2], axis=0), axis=1).sum()) if len(s) > 1 else 0.0


def inside(strokes: Sequence[np.ndarray], points: np.ndarray) -> np.ndarray:
    """Bool per point (M, 2): inside the closed strokes by the even-odd rule (holes are out)."""
    size = sketch_size(strokes)
    a, b = _polygon_edges(strokes, size)
    p = np.asarray(points, np.float64).reshape(-1, 2)
    if not len(a):
        return np.zeros(len(p), bool)
    straddle = (a[None, :, 1] > p[:, None, 1]) != (b[None, :, 1] > p[:, None, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        x = a[None, :, 0] + (p[:, None, 1] - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / (b[None, :, 1] - a[None, :, 1])
    return ((straddle & (x > p[:, None, 0])).sum(axis=1) % 2) == 1


# --- Sloppy variants ------------------------------------------------------------------------------

def with_gaps(strokes: Sequence[np.ndarray], fraction: float, rng: np.random.Generator,
              count: int | None = None, shortest: float = 0.5) -> Strokes:
    """The outline cut open in ``count`` places (1 to 3 when None).

    Each gap takes out a stretch of stroke between ``shortest * fraction`` and ``fraction``
    of the size long, so its ends are at most that far apart (exactly, on a straight part).
    Gaps are spread over the strokes in proportion to their length, never on top of each
    other; strokes too short to cut are left whole."""
    size = sketch_size(strokes)
    curves = [_Curve(s, size) for s in strokes]
    n = int(rng.integers(1, 4)) if count is None else int(count)
    gaps = rng.uniform(shortest, 1.0, n) * fraction * size
    spacing = 3.0 * float(gaps.max()) if n else 0.0
    lengths = np.array([c.length if c.length > spacing else 0.0 for c in curves])
    cuts: list[list[tuple[float, float]]] = [[] for _ in curves]
    placed = 0
    for _ in range(200 * max(n, 1)):
        if placed == n or lengths.sum() <= 0:
            break
        i = int(rng.choice(len(curves), p=lengths / lengths.sum()))
        curve, gap = curves[i], float(gaps[placed])
        centre = float(rng.uniform(0.0, curve.length))
        if not curve.closed:
            centre = float(np.clip(centre, 0.5 * gap, curve.length - 0.5 * gap))
        if any(curve.distance(centre, other) < spacing for other, _ in cuts[i]):
            continue
        cuts[i].append((centre, gap))
        placed += 1
    out: Strokes = []
    for curve, curve_cuts in zip(curves, cuts):
        out += curve.without(sorted(curve_cuts)) if curve_cuts else [curve.points.copy()]
    return out


def with_overshoot(strokes: Sequence[np.ndarray], rng: np.random.Generator, fraction: float = 0.03,
                   shortest: float = 0.5) -> Strokes:
    """Every stroke runs on past its ends, straight along its end tangents, by between
    ``shortest * fraction`` and ``fraction`` of the size.

    Closed outlines are first drawn as separate strokes between their corners (2 or 3
    strokes between random points where there are fewer than two corners), so the lines
    cross at the corners as in a quick drawing of a box."""
    size = sketch_size(strokes)
    out: Strokes = []
    for stroke in strokes:
        curve = _Curve(stroke, size)
        if curve.length <= 0:
            out.append(curve.points.copy())
            continue
        pieces = [curve.points]
        if curve.closed:
            bounds = curve.corners()
            if len(bounds) < 2:
                bounds = _spread(curve.length, int(rng.integers(2, 4)), rng)
            bounds = np.append(bounds, bounds[0] + curve.length)
            pieces = [curve.piece(start, end) for start, end in zip(bounds[:-1], bounds[1:])]
        for piece in pieces:
            out.append(_extend(piece, rng.uniform(shortest, 1.0, 2) * fraction * size, size))
    return out


def drawn_twice(strokes: Sequence[np.ndarray], rng: np.random.Generator, offset: float = 0.01,
                jitter: float = 0.003) -> Strokes:
    """Each stroke followed by a second go at it: moved by about ``offset`` of the size in a
    random direction and wobbling smoothly by about ``jitter`` of the size along its length."""
    size = sketch_size(strokes)
    out: Strokes = []
    for stroke in strokes:
        s = _points(stroke)
        again = s.copy()
        angle = rng.uniform(0.0, 2.0 * np.pi)
        again[:, :2] += offset * size * rng.uniform(0.7, 1.3) * np.array([np.cos(angle), np.sin(angle)])
        along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(s[:, :2], axis=0), axis=1))])
        for axis in range(2):
            wavelength = rng.uniform(0.15, 0.4, 2) * size
            phase = rng.uniform(0.0, 2.0 * np.pi, 2)
            wobble = np.sin(2.0 * np.pi * along[:, None] / wavelength + phase).sum(axis=1) / np.sqrt(2.0)
            again[:, axis] += jitter * size * wobble
        out += [s, again]
    return out


def in_pieces(strokes: Sequence[np.ndarray], rng: np.random.Generator, pieces: tuple[int, int] = (3, 6),
              overlap: float = 0.03) -> Strokes:
    """Each stroke drawn as ``pieces[0]`` to ``pieces[1]`` separate strokes that overlap their
    neighbours by between half ``overlap`` and ``overlap`` of the size, together covering
    the whole stroke; pieces come in random order, some drawn backwards."""
    size = sketch_size(strokes)
    out: Strokes = []
    for stroke in strokes:
        curve = _Curve(stroke, size)
        n = int(rng.integers(pieces[0], pieces[1] + 1))
        if curve.length <= 0 or n < 2:
            out.append(curve.points.copy())
            continue
        if curve.closed:
            bounds = _spread(curve.length, n, rng)
            bounds = np.append(bounds, bounds[0] + curve.length)
        else:
            bounds = np.concatenate([[0.0], np.sort(_spread(curve.length, n, rng, phase=0.0)[1:]), [curve.length]])
        shortest_piece = float(np.diff(bounds).min())
        back = np.minimum(rng.uniform(0.5, 1.0, n) * overlap * size, 0.5 * shortest_piece)
        if not curve.closed:
            back[0] = 0.0
        drawn = [curve.piece(bounds[i] - back[i], bounds[i + 1]) for i in range(n)]
        drawn = [p[::-1].copy() if rng.random() < 0.5 else p for p in drawn]
        out += [drawn[i] for i in rng.permutation(n)]
    return out


def with_hatching(strokes: Sequence[np.ndarray], rng: np.random.Generator, spacing: float = 0.05,
                  angle: float | None = None, coverage: float = 0.6, inset: float = 0.02) -> Strokes:
    """The strokes plus parallel hatching lines inside the closed outline.

    Lines are ``spacing`` of the size apart at ``angle`` radians (random when None), over a
    random band ``coverage`` of the outline's width across them, and keep at least ``inset``
    of the size clear of the outline. Raises ValueError when no stroke is closed."""
    return _copy(strokes) + _hatch_lines(strokes, rng, spacing, angle, coverage, inset)


def with_creases(strokes: Sequence[np.ndarray], rng: np.random.Generator, count: int = 2,
                 inset: float = 0.0) -> Strokes:
    """The strokes plus ``count`` straight crease lines across the inside of the closed outline,
    each from outline to outline (less ``inset`` of the size at both ends) through a random
    inside point. Raises ValueError when no stroke is closed."""
    return _copy(strokes) + _crease_lines(strokes, rng, count, inset)


def with_stray_dot(strokes: Sequence[np.ndarray], rng: np.random.Generator, margin: float = 0.05,
                   clearance: float = 0.03) -> Strokes:
    """The strokes plus a one-point stroke outside the outline: within the strokes' bounding
    box grown by ``margin`` of the size, and at least ``clearance`` of the size from every
    stroke."""
    return _copy(strokes) + [_stray_dot(strokes, rng, margin, clearance)]


def sloppy_drawing(strokes: Sequence[np.ndarray], rng: np.random.Generator, gap: float = 0.03,
                   chance: float = 0.5) -> Strokes:
    """A random mix of the above, each applied with probability ``chance`` (all of them at 1):
    hatching and creases inside the clean outline, the outline in pieces, with overshoots,
    with gaps of up to ``gap`` of the size, drawn twice, and a stray dot."""
    closed = any(is_closed(s, sketch_size(strokes)) for s in strokes)
    interior: Strokes = []
    if closed and rng.random() < chance:
        interior += _hatch_lines(strokes, rng, 0.05, None, 0.6, 0.02)
    if closed and rng.random() < chance:
        interior += _crease_lines(strokes, rng, int(rng.integers(1, 3)), 0.0)
    dot = [_stray_dot(strokes, rng, 0.05, 0.03)] if rng.random() < chance else []
    out = _copy(strokes)
    if rng.random() < chance:
        out = in_pieces(out, rng)
    if rng.random() < chance:
        out = with_overshoot(out, rng)
    if rng.random() < chance:
        out = with_gaps(out, gap, rng)
    if rng.random() < chance:
        out = drawn_twice(out, rng)
    return out + interior + dot


# --- Clean outlines from masks --------------------------------------------------------------------

def outline_from_mask(mask: np.ndarray, extent: float = CANVAS_EXTENT, min_area_px: float = 4.0,
                      smoothing: int = 1) -> Strokes:
    """The boundary of a boolean mask (res, res) on a view's canvas [-extent, extent]^2 as
    closed strokes (N, 3) of (u, v, pressure 1), largest first: outer outlines and holes.

    Marching squares at the half-way level, so the outline runs half a pixel outside the
    outermost inside pixel centres; diagonal neighbours count as connected. Loops enclosing
    less than ``min_area_px`` pixels are dropped; ``smoothing`` passes of a [1, 2, 1] filter
    take off the pixel staircase."""
    m = np.asarray(mask, bool)
    res = m.shape[0]
    loops = []
    for loop in _marching_squares(m):
        area = 0.5 * abs(float(np.dot(loop[:, 0], np.roll(loop[:, 1], -1)) - np.dot(loop[:, 1], np.roll(loop[:, 0], -1))))
        if area < min_area_px:
            continue
        for _ in range(smoothing):
            loop = 0.25 * (np.roll(loop, 1, axis=0) + 2.0 * loop + np.roll(loop, -1, axis=0))
        u, v = pixel_to_plane(loop[:, 0], loop[:, 1], extent, res)
        stroke = np.stack([u, v, np.ones_like(u)], axis=1)
        loops.append((area, np.concatenate([stroke, stroke[:1]])))
    return [stroke for _, stroke in sorted(loops, key=lambda item: -item[0])]


def _segment_table() -> list[list[tuple[int, int]]]:
    """Per marching-squares case (bit k: corner k inside; corners tl, tr, br, bl clockwise; edge
    k runs from corner k to k + 1) the segments as (entry edge, exit edge), inside on the
    same side of every segment; the saddles join their two inside corners."""
    table = []
    for case in range(16):
        corner = [(case >> k) & 1 for k in range(4)]
        starts = [k for k in range(4) if not corner[k] and corner[(k + 1) % 4]]
        ends = [k for k in range(4) if corner[k] and not corner[(k + 1) % 4]]
        if len(starts) == 1:
            table.append([(starts[0], ends[0])])
        else:
            table.append([(k, (k - 1) % 4) for k in starts])
    return table


_SEGMENTS = _segment_table()
_EDGE_MIDPOINTS = np.array([(0, 1), (1, 2), (2, 1), (1, 0)])   # (2·row, 2·col) offsets of edges 0..3 in a cell


def _marching_squares(mask: np.ndarray) -> list[np.ndarray]:
    """Closed loops (N, 2) of (row, col) pixel coordinates around the mask's regions (not repeated at the end)."""
    p = np.pad(mask, 1).astype(np.int64)
    case = p[:-1, :-1] | (p[:-1, 1:] << 1) | (p[1:, 1:] << 2) | (p[1:, :-1] << 3)
    width = 2 * p.shape[1] + 1
    starts, ends = [], []
    for value in range(1, 15):
        rows, cols = np.nonzero(case == value)
        if not len(rows):
            continue
        base = np.stack([2 * rows, 2 * cols], axis=1)
        for entry, exit_ in _SEGMENTS[value]:
            a, b = base + _EDGE_MIDPOINTS[entry], base + _EDGE_MIDPOINTS[exit_]
            starts.append(a[:, 0] * width + a[:, 1])
            ends.append(b[:, 0] * width + b[:, 1])
    if not starts:
        return []
    start, end = np.concatenate(starts), np.concatenate(ends)
    following = dict(zip(start.tolist(), end.tolist()))
    loops = []
    for first in start.tolist():
        if first not in following:
            continue
        loop, key = [first], following.pop(first)
        while key != first:
            loop.append(key)
            key = following.pop(key)
        keys = np.array(loop)
        loops.append(np.stack([keys // width, keys % width], axis=1) / 2.0 - 1.0)
    return loops


# --- Pieces of strokes ----------------------------------------------------------------------------

class _Curve:
    """A stroke with its arclength, to cut pieces at arclength positions; pieces of a closed
    stroke may run round past its start."""

    def __init__(self, stroke: np.ndarray, size: float):
        self.points = _points(stroke)
        self.closed = is_closed(self.points, size)
        steps = np.linalg.norm(np.diff(self.points[:, :2], axis=0), axis=1)
        self.s = np.concatenate([[0.0], np.cumsum(steps)])
        self.length = float(self.s[-1])
        self.size = size

    def distance(self, a: float, b: float) -> float:
        """Distance along the stroke between arclengths a and b (the shorter way round a closed one)."""
        d = abs(a - b)
        return min(d, self.length - d) if self.closed else d

    def at(self, t: np.ndarray) -> np.ndarray:
        """Points (len(t), C) at arclengths t (wrapped round a closed stroke, clipped on an open one)."""
        t = np.asarray(t, np.float64)
        t = np.mod(t, self.length) if self.closed else np.clip(t, 0.0, self.length)
        return np.stack([np.interp(t, self.s, self.points[:, k]) for k in range(self.points.shape[1])], axis=1)

    def piece(self, start: float, end: float) -> np.ndarray:
        """The stroke between arclengths ``start`` < ``end``, ends interpolated (for a closed
        stroke ``end - start`` may reach its whole length and both may lie anywhere)."""
        points, s = self.points, self.s
        if self.closed:
            shift = np.floor(start / self.length) * self.length
            start, end = start - shift, min(end - shift, start - shift + self.length)
            points = np.concatenate([points, points[1:]])
            s = np.concatenate([s, s[1:] + self.length])
        else:
            start, end = max(start, 0.0), min(end, self.length)
        inner = (s > start) & (s < end)
        ends = np.stack([np.interp([start, end], s, points[:, k]) for k in range(points.shape[1])], axis=1)
        return np.concatenate([ends[:1], points[inner], ends[1:]])

    def without(self, cuts: list[tuple[float, float]]) -> Strokes:
        """The pieces left when each (centre, length) span, sorted by centre, is taken out."""
        if self.closed:
            spans = [(centre + 0.5 * gap, cuts[(i + 1) % len(cuts)][0] - 0.5 * cuts[(i + 1) % len(cuts)][1]
                      + (self.length if i == len(cuts) - 1 else 0.0)) for i, (centre, gap) in enumerate(cuts)]
        else:
            edges = [0.0] + [x for centre, gap in cuts for x in (centre - 0.5 * gap, centre + 0.5 * gap)] + [self.length]
            spans = list(zip(edges[::2], edges[1::2]))
        return [self.piece(a, b) for a, b in spans if b - a > 1e-9 * max(self.size, 1e-12)]

    def corners(self) -> np.ndarray:
        """Sorted arclengths where the stroke turns by more than ``CORNER_DEGREES`` over
        ``TANGENT_LENGTH`` of the size, at least two such lengths apart."""
        step, window = CORNER_STEP * self.size, TANGENT_LENGTH * self.size
        if step <= 0 or self.length <= 4 * window:
            return np.zeros(0)
        t = np.arange(0.0, self.length, step)
        here, before, after = self.at(t)[:, :2], self.at(t - window)[:, :2], self.at(t + window)[:, :2]
        d0, d1 = here - before, after - here
        cosine = (d0 * d1).sum(axis=1) / np.maximum(np.linalg.norm(d0, axis=1) * np.linalg.norm(d1, axis=1), 1e-300)
        turn = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
        found: list[float] = []
        for i in np.argsort(-turn):
            if turn[i] <= CORNER_DEGREES:
                break
            if all(self.distance(t[i], other) > 2.0 * window for other in found):
                found.append(float(t[i]))
        return np.sort(np.array(found))


def _points(stroke: np.ndarray) -> np.ndarray:
    """A float64 (N, C) copy of a stroke without repeated consecutive points."""
    s = np.array(stroke, np.float64).reshape(len(stroke), -1)
    if len(s) < 2:
        return s
    keep = np.concatenate([[True], np.linalg.norm(np.diff(s[:, :2], axis=0), axis=1) > 0])
    return s[keep]


def _copy(strokes: Sequence[np.ndarray]) -> Strokes:
    return [np.array(s, np.float64).reshape(len(s), -1) for s in strokes]


def _spread(length: float, n: int, rng: np.random.Generator, phase: float | None = None) -> np.ndarray:
    """``n`` increasing arclengths about evenly spread over ``length`` from a random (or given) phase."""
    start = rng.uniform(0.0, length) if phase is None else phase
    return start + length * (np.arange(n) + rng.uniform(-0.25, 0.25, n)) / n


def _extend(piece: np.ndarray, lengths: np.ndarray, size: float) -> np.ndarray:
    """A stroke run on straight past its start and its end by ``lengths`` (head, tail)."""
    curve = _Curve(piece, size)
    if curve.length <= 0:
        return piece.copy()
    reach = min(TANGENT_LENGTH * size, curve.length)
    head, tail = curve.points[:1].copy(), curve.points[-1:].copy()
    head[:, :2] += lengths[0] * _unit(head[0, :2] - curve.at([reach])[0, :2])
    tail[:, :2] += lengths[1] * _unit(tail[0, :2] - curve.at([curve.length - reach])[0, :2])
    return np.concatenate([head, curve.points, tail])


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else np.zeros_like(v)


# --- Lines inside the outline ---------------------------------------------------------------------

def _polygon_edges(strokes: Sequence[np.ndarray], size: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end points (E, 2) of the edges of the closed strokes."""
    loops = [np.asarray(s, np.float64)[:, :2] for s in strokes if is_closed(s, size)]
    if not loops:
        return np.zeros((0, 2)), np.zeros((0, 2))
    return np.concatenate([p[:-1] for p in loops]), np.concatenate([p[1:] for p in loops])


def _inside_spans(a: np.ndarray, b: np.ndarray, direction: np.ndarray, normal: np.ndarray,
                  offset: float) -> np.ndarray:
    """(K, 2) spans of t where the line offset * normal + t * direction is inside the edges (even-odd)."""
    da, db = a @ normal - offset, b @ normal - offset
    cross = (da > 0) != (db > 0)
    ta, tb = a[cross] @ direction, b[cross] @ direction
    t = np.sort(ta + (tb - ta) * da[cross] / (da[cross] - db[cross]))
    return t[: len(t) // 2 * 2].reshape(-1, 2)


def _line(start: np.ndarray, end: np.ndarray, size: float, columns: int) -> np.ndarray:
    """A straight stroke from start to end with a point every ``LINE_SPACING`` of the size, pressure 1."""
    n = max(2, int(np.ceil(np.linalg.norm(end - start) / (LINE_SPACING * size))) + 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    points = start + t * (end - start)
    return np.concatenate([points, np.ones((n, columns - 2))], axis=1) if columns > 2 else points


def _columns(strokes: Sequence[np.ndarray]) -> int:
    return max((np.asarray(s).reshape(len(s), -1).shape[1] for s in strokes if len(s)), default=3)


def _hatch_lines(strokes: Sequence[np.ndarray], rng: np.random.Generator, spacing: float,
                 angle: float | None, coverage: float, inset: float) -> Strokes:
    size = sketch_size(strokes)
    a, b = _polygon_edges(strokes, size)
    if not len(a):
        raise ValueError("hatching needs a closed outline")
    theta = rng.uniform(0.0, np.pi) if angle is None else angle
    direction, normal = np.array([np.cos(theta), np.sin(theta)]), np.array([-np.sin(theta), np.cos(theta)])
    across = a @ normal
    lo, hi = float(across.min()), float(across.max())
    band = coverage * (hi - lo)
    first = rng.uniform(lo, hi - band) + 0.5 * spacing * size
    lines = []
    step = 0.5 * LINE_SPACING * size
    for offset in np.arange(first, first + band, spacing * size):
        for t0, t1 in _inside_spans(a, b, direction, normal, offset):
            t = np.linspace(t0, t1, max(2, int(np.ceil((t1 - t0) / step)) + 1))
            points = offset * normal + t[:, None] * direction
            clear = _segment_distance(points, a, b) >= inset * size
            for run in np.split(np.arange(len(t)), np.flatnonzero(np.diff(clear.astype(np.int8))) + 1):
                if clear[run[0]] and t[run[-1]] - t[run[0]] > max(inset, LINE_SPACING) * size:
                    lines.append(_line(points[run[0]], points[run[-1]], size, _columns(strokes)))
    return lines


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from each point (M, 2) to the nearest of the segments a -> b (E, 2)."""
    d = b - a
    length2 = np.maximum((d * d).sum(axis=1), 1e-300)
    out = np.empty(len(points))
    for i in range(0, len(points), 256):
        p = points[i:i + 256, None, :]
        t = np.clip(((p - a) * d).sum(axis=2) / length2, 0.0, 1.0)
        out[i:i + 256] = np.sqrt(((p - a - t[..., None] * d) ** 2).sum(axis=2).min(axis=1))
    return out


def _crease_lines(strokes: Sequence[np.ndarray], rng: np.random.Generator, count: int, inset: float) -> Strokes:
    size = sketch_size(strokes)
    a, b = _polygon_edges(strokes, size)
    if not len(a):
        raise ValueError("crease lines need a closed outline")
    lo, hi = np.minimum(a.min(axis=0), b.min(axis=0)), np.maximum(a.max(axis=0), b.max(axis=0))
    lines: Strokes = []
    for _ in range(200 * count):
        if len(lines) == count:
            break
        point, theta = rng.uniform(lo, hi), rng.uniform(0.0, np.pi)
        direction, normal = np.array([np.cos(theta), np.sin(theta)]), np.array([-np.sin(theta), np.cos(theta)])
        offset, along = float(point @ normal), float(point @ direction)
        for t0, t1 in _inside_spans(a, b, direction, normal, offset):
            if t0 < along < t1 and t1 - t0 - 2.0 * inset * size > 0.2 * size:
                lines.append(_line(offset * normal + (t0 + inset * size) * direction,
                                   offset * normal + (t1 - inset * size) * direction, size, _columns(strokes)))
    return lines


def _stray_dot(strokes: Sequence[np.ndarray], rng: np.random.Generator, margin: float, clearance: float) -> np.ndarray:
    size = sketch_size(strokes)
    drawn = [_points(s)[:, :2] for s in strokes if len(s)]
    a = np.concatenate([p[:-1] if len(p) > 1 else p for p in drawn])
    b = np.concatenate([p[1:] if len(p) > 1 else p for p in drawn])
    points = np.concatenate(drawn)
    lo, hi = points.min(axis=0) - margin * size, points.max(axis=0) + margin * size
    candidates = rng.uniform(lo, hi, (200, 2))
    usable = (_segment_distance(candidates, a, b) >= clearance * size) & ~inside(strokes, candidates)
    dot = candidates[np.argmax(usable)] if usable.any() else hi
    return np.concatenate([dot, np.ones(_columns(strokes) - 2)])[None, :]

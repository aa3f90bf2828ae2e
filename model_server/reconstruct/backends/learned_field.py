"""What the learned backend's network sees and how its answer becomes a solid: the one
definition shared by training-data making, training and the running backend.

The network starts from the round prior (:mod:`.round`), not from nothing. On a coarse
grid over the canvas cube it answers two things per cell:

- a roundness ``t`` in [0, 1]: the solid's field there is the hull's plus ``t`` times the
  round prior's excess over it, so 0 keeps the hull's box, 1 the prior's ellipses, and
  values between give the rounded boxes in between;
- a carving ``c`` >= 0, added to the field: cavities, holes and the gaps between legs that
  no silhouette shows. It is faded out in parts thinner than ``PROTECT_WIDTH`` (the
  narrower of the front's and side's row intervals there), so the stems, legs and handles
  a sketch shows are kept, and over the outer ``RIM_FRACTION`` of each front and side row
  interval (:func:`rim_fade`), so carving keeps off the drawn outlines' sides. Where it
  still empties a front or side silhouette pixel (the top of a part thin only in height,
  like a table's top), it is switched off around the deepest point of that pixel's line
  of sight (``LearnedField._keep_outlines``).

    f = hull + t (round - hull) + c k,    k = the thickness fade

``t`` >= 0 and ``c`` >= 0, and the round prior lies inside the hull, so f >= hull: the
solid never leaves the hull; and where ``c`` = 0 its front and side outlines are the drawn
ones, because the round prior's cross-sections touch every side of the hull's. A field,
the solid is one consistent shape: all 14 views' maps are renderings of it
(:func:`.hull.field_maps`), so they agree by construction.

Inputs (``CHANNELS`` per node of the ``COARSE``³ grid): the hull's and the round prior's
fields, each node's place across its front and side row intervals and their half-widths,
the front, side and top ink where the node projects, a flag for a drawn top, and the
node's coordinates.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from model_server.geometry.views import CANVAS_EXTENT, INPUT_VIEWS, project
from model_server.reconstruct.backends.round import RoundField

COARSE = 32                # network grid nodes per axis over the canvas cube [-1, 1]^3
FINE = 64                  # training grid nodes per axis: truth occupancy, hull and round fields
CHANNELS = 13
FIELD_CLAMP = 0.25         # fields are clamped to +-this (world units) and scaled to +-1 for the network
HALF_CLAMP = 1.0           # row half-widths likewise
INK_VIEWS = ("front", "side", "top")
PROTECT_WIDTH = (0.025, 0.05)   # half-widths (world units) from which carving fades in, fully on
CARVE_SCALE = 0.05         # world units per unit of the carving head's softplus
UV_CHANNELS = (2, 3)       # where the inputs hold u and v, divided by UV_SCALE
UV_SCALE = 2.0
RIM_FRACTION = 0.25        # carving fades out over this outer fraction of every front and side row interval
SURFACE_WIDTH = 0.02       # world units: the soft step that turns f into an occupancy for training


def grid_axis(n: int) -> np.ndarray:
    """The n node positions per axis of a grid over the canvas cube [-1, 1]^3."""
    return np.linspace(-CANVAS_EXTENT, CANVAS_EXTENT, n)


def thickness_fade(half_u: np.ndarray, half_v: np.ndarray) -> np.ndarray:
    """k in [0, 1]: 0 where the narrower row interval's half-width is below PROTECT_WIDTH[0]
    (a thin part), 1 from PROTECT_WIDTH[1], linear between."""
    lo, hi = PROTECT_WIDTH
    return np.clip((np.minimum(half_u, half_v) - lo) / (hi - lo), 0.0, 1.0)


def rim_fade(u, v):
    """In [0, 1] from the nodes' places across their front and side row intervals (u, v:
    -1 and 1 at the drawn outline): 0 on the outlines, 1 from RIM_FRACTION inside them.
    For numpy arrays or torch tensors alike; applied to the network's carving at the coarse
    nodes (``FieldNet.forward``), so training and inference carve the same."""
    inside = 1.0 - abs(u)
    other = 1.0 - abs(v)
    nearer = inside * (inside < other) + other * (inside >= other)
    return (nearer / RIM_FRACTION).clip(0.0, 1.0)


def solid(hull, rounded, t, c, fade):
    """f = hull + t (round - hull) + c k, for numpy arrays or torch tensors alike."""
    return hull + t * (rounded - hull) + c * fade


def lifted_ink(inks: dict[str, np.ndarray], n: int) -> np.ndarray:
    """(3, n, n, n): the front, side and top ink where each grid node projects (the darkest
    ink within one grid cell, so thin strokes are not missed; 0 for a missing drawing)."""
    out = np.zeros((len(INK_VIEWS), n, n, n), np.float32)
    axis = grid_axis(n)
    a, b = np.meshgrid(axis, axis, indexing="ij")
    zero = np.zeros_like(a)
    planes = {"front": (np.stack([a, zero, b], -1), (slice(None), None, slice(None))),
              "side": (np.stack([zero, a, b], -1), (None, slice(None), slice(None))),
              "top": (np.stack([a, b, zero], -1), (slice(None), slice(None), None))}
    for k, name in enumerate(INK_VIEWS):
        if name not in inks:
            continue
        ink = np.asarray(inks[name], np.float32)
        cell = max(1, int(round(ink.shape[0] / (n - 1))))
        reach = ndimage.maximum_filter(ink, size=cell + 1)
        points, where = planes[name]
        rows, cols, _ = project(INPUT_VIEWS[name], points.reshape(-1, 3), ink.shape[0])
        plane = ndimage.map_coordinates(reach, np.stack([rows, cols]), order=1, mode="constant").reshape(n, n)
        out[k] = np.broadcast_to(plane[where], (n, n, n))
    return out


def fields_on_grid(field: RoundField, n: int) -> dict[str, np.ndarray]:
    """The hull's and round prior's fields, the row intervals (u, v, half-widths) and the
    thickness fade, on the n^3 grid over the canvas cube, each (n, n, n) float32."""
    axis = grid_axis(n)
    hull, rounded = field.grids(n, axis[0], axis[-1])
    (u, half_u), (v, half_v) = field.front.on_grid(axis), field.side.on_grid(axis)
    shape = (n, n, n)
    half_u, half_v = np.broadcast_to(half_u, shape), np.broadcast_to(half_v, shape)
    return {"hull": hull.astype(np.float32), "round": rounded.astype(np.float32),
            "u": np.broadcast_to(u, shape).astype(np.float32), "v": np.broadcast_to(v, shape).astype(np.float32),
            "half_u": half_u.astype(np.float32), "half_v": half_v.astype(np.float32),
            "fade": thickness_fade(half_u, half_v).astype(np.float32)}


def network_inputs(field: RoundField, inks: dict[str, np.ndarray]) -> np.ndarray:
    """(CHANNELS, COARSE, COARSE, COARSE) float32: what the network sees of a sketch whose
    round prior is ``field`` and whose ink images are ``inks``."""
    n = COARSE
    grids = fields_on_grid(field, n)
    axis = grid_axis(n).astype(np.float32)
    coords = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"))
    top = np.full((1, n, n, n), float("top" in inks), np.float32)
    scaled = [np.clip(grids[k], -FIELD_CLAMP, FIELD_CLAMP) / FIELD_CLAMP for k in ("hull", "round")]
    scaled += [np.clip(grids[k], -UV_SCALE, UV_SCALE) / UV_SCALE for k in ("u", "v")]
    scaled += [np.clip(grids[k], 0.0, HALF_CLAMP) / HALF_CLAMP for k in ("half_u", "half_v")]
    return np.concatenate([np.stack(scaled), lifted_ink(inks, n), top, coords]).astype(np.float32)


def training_grids(field: RoundField) -> np.ndarray:
    """(3, FINE, FINE, FINE) float16: hull, round and thickness fade on the training grid,
    where the network's answers are applied and scored."""
    grids = fields_on_grid(field, FINE)
    return np.stack([grids["hull"], grids["round"], grids["fade"]]).astype(np.float16)


def _linear_weights(at: np.ndarray, n: int) -> np.ndarray:
    """(len(at), n): linear interpolation weights of continuous node positions, clamped."""
    at = np.clip(at, 0.0, n - 1.0)
    low = np.minimum(np.floor(at).astype(int), n - 2)
    frac = at - low
    weights = np.zeros((len(at), n))
    weights[np.arange(len(at)), low] = 1.0 - frac
    weights[np.arange(len(at)), low + 1] = frac
    return weights


def _node_position(x: np.ndarray, n: int) -> np.ndarray:
    """World coordinates -> continuous node positions of the n^3 grid over the canvas cube."""
    return (np.asarray(x, np.float64) + CANVAS_EXTENT) * ((n - 1) / (2.0 * CANVAS_EXTENT))


class LearnedField(RoundField):
    """The learned solid, f = hull + t (round - hull) + c k, with the network's ``t`` and
    ``c`` (COARSE^3 grids over the canvas cube) read trilinearly between nodes. Until
    :meth:`answer` is called it is the round prior (t = 1, c = 0), which is what the
    network looks at (:func:`network_inputs`). Has the hull's field interface, so it is
    surfaced and rendered like the priors (:func:`.hull.field_maps`)."""

    def __init__(self, silhouettes: dict[str, np.ndarray]) -> None:
        super().__init__(silhouettes, 1.0)
        self.answer(np.ones((COARSE,) * 3), np.zeros((COARSE,) * 3))

    def answer(self, t: np.ndarray, c: np.ndarray) -> None:
        """Take the network's roundness ``t`` and carving ``c`` (n^3 grids over the canvas
        cube), with the carving switched off wherever it would erase a drawn outline."""
        self._take(t, c)
        if np.any(self.c > 0):
            self._keep_outlines()

    def _take(self, t: np.ndarray, c: np.ndarray) -> None:
        t, c = np.asarray(t, np.float64), np.asarray(c, np.float64)
        self.n = t.shape[0]
        spacing = 2.0 * CANVAS_EXTENT / (self.n - 1)
        self.t, self.c = t.astype(np.float32), c.astype(np.float32)
        # values and gradients, one row per node, so a point's 8 corners are 8 row gathers
        stack = np.stack([t, c, *np.gradient(t, spacing), *np.gradient(c, spacing)], axis=-1)
        self.rows = stack.reshape(-1, 8).astype(np.float32)

    def _read(self, points: np.ndarray) -> np.ndarray:
        """(N, 8): t, c, grad t (3), grad c (3) at points (N, 3), trilinear between nodes."""
        n = self.n
        at = _node_position(points, n)
        low = np.clip(np.floor(at).astype(np.int64), 0, n - 2)
        frac = np.clip(at - low, 0.0, 1.0).astype(np.float32)
        base = (low[:, 0] * n + low[:, 1]) * n + low[:, 2]
        out = np.zeros((len(points), 8), np.float32)
        for dx in (0, 1):
            wx = frac[:, 0] if dx else 1.0 - frac[:, 0]
            for dy in (0, 1):
                wxy = wx * (frac[:, 1] if dy else 1.0 - frac[:, 1])
                for dz in (0, 1):
                    w = wxy * (frac[:, 2] if dz else 1.0 - frac[:, 2])
                    out += self.rows[base + (dx * n + dy) * n + dz] * w[:, None]
        return out

    def value_and_gradient(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f and its gradient at points (N, 3); the fade's own gradient is left out (it
        only turns carving on across a thin band of thicknesses)."""
        points = np.asarray(points, np.float64)
        hull, hull_gradient, rounded, round_gradient, half_u, half_v = self.parts(points)
        fade = thickness_fade(half_u, half_v)
        read = self._read(points).astype(np.float64)
        t, c, t_gradient, c_gradient = read[:, 0], read[:, 1], read[:, 2:5], read[:, 5:8]
        value = solid(hull, rounded, t, c, fade)
        gradient = (hull_gradient + t[:, None] * (round_gradient - hull_gradient)
                    + (rounded - hull)[:, None] * t_gradient + fade[:, None] * c_gradient)
        return value, gradient

    def grid(self, n: int, lo: float, hi: float) -> np.ndarray:
        """f sampled on an n^3 grid over [lo, hi]^3, indexed [x, y, z]."""
        return self._solid_on(*self._priors_on(n, lo, hi), n, lo, hi)

    def _priors_on(self, n: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The hull's field, the round prior's and the thickness fade on an n^3 grid over [lo, hi]^3."""
        hull, rounded = self.grids(n, lo, hi)
        axis = np.linspace(lo, hi, n)
        (_, half_u), (_, half_v) = self.front.on_grid(axis), self.side.on_grid(axis)
        return hull, rounded, thickness_fade(half_u, half_v)

    def _solid_on(self, hull: np.ndarray, rounded: np.ndarray, fade: np.ndarray, n: int, lo: float,
                  hi: float) -> np.ndarray:
        """f on that grid, from the priors there and the answers read between the nodes."""
        weights = _linear_weights(_node_position(np.linspace(lo, hi, n), self.n), self.n).astype(np.float32)
        t, c = (np.einsum("ai,bj,ck,ijk->abc", weights, weights, weights, a, optimize=True) for a in (self.t, self.c))
        return solid(hull, rounded, t, c, fade).astype(np.float32)

    def _keep_outlines(self) -> None:
        """Where the carving has emptied a front or side silhouette pixel (of the FINE
        grid), switch it off around the deepest point of the uncarved solid along that
        pixel's line of sight, which fills the pixel again and leaves the carving elsewhere
        on the line. The rim and thickness fades keep carving off the outlines' sides and
        off thin parts, but not off the top and bottom of a part thin only in height (a
        table's top); this does, for any shape."""
        lo, hi = -CANVAS_EXTENT, CANVAS_EXTENT
        hull, rounded, fade = self._priors_on(FINE, lo, hi)
        drawn = [(hull < 0).any(axis=k) for k in (1, 0)]          # front (x, z), side (y, z)
        near = (np.abs(grid_axis(self.n)[:, None] - grid_axis(FINE)[None, :])
                < 2.0 * CANVAS_EXTENT / (self.n - 1)).astype(np.float32)
        base = self._solid_on(hull, rounded, np.zeros_like(fade), FINE, lo, hi)   # the solid before carving
        c = self.c.astype(np.float64)
        for _ in range(3):
            inside = self._solid_on(hull, rounded, fade, FINE, lo, hi) < 0
            emptied = [d & ~inside.any(axis=k) for d, k in zip(drawn, (1, 0))]
            if not any(e.any() for e in emptied):
                return
            keep = np.zeros(base.shape, np.float32)
            x, z = np.nonzero(emptied[0])
            keep[x, base[x, :, z].argmin(axis=1), z] = 1.0
            y, z = np.nonzero(emptied[1])
            keep[base[:, y, z].argmin(axis=0), y, z] = 1.0
            around = np.einsum("ai,bj,ck,ijk->abc", near, near, near, ndimage.maximum_filter(keep, size=3),
                               optimize=True) > 0
            c[around] = 0.0
            self._take(self.t, c)

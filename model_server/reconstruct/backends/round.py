"""Backend 'round': the visual hull with every cross-section rounded, no learning.

Front and side share the height axis. At each height z, an interval [a, b] of the front
drawing's row and an interval [c, d] of the side drawing's row make a rectangle of the
hull's horizontal cross-section. The round prior puts the superellipse inscribed in each
rectangle in its place:

    |u|^p + |v|^p <= 1,   u = (x - (a + b) / 2) / ((b - a) / 2),   v likewise in y,

with p = 2 / roundness: roundness 1 gives ellipses, 0 the hull's rectangles, values
between superellipses. Each superellipse touches all four sides of its rectangle, so the
front and side outlines stay exactly as drawn, and a line drawn in both views (a stem, a
leg) becomes a round tube.

A drawn top view is kept as drawn: rounding never grows beyond it (the hull lies inside
its prism) and never cuts into it. Where the rounded solid, seen from above, leaves part
of the top outline uncovered (the corners of a square drawn over a box's front and side,
a cow's ears placed off the head's centre line), the hull's own columns fill that part,
and only that part. So front and side rectangles over a drawn circle give an upright
cylinder, over a drawn square the box, and three circles a ball. Roundness 0 is the hull
here too.

The interval ends are read at sub-pixel precision off the same smoothed signed distance
fields the hull uses, and interpolated between rows, so the surface has no terraces. The
result is a field (:class:`RoundField`, the hull's interface), surfaced and rendered into
the 14 views' maps by the hull's own machinery (:func:`.hull.field_maps`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from model_server.geometry.maps import Maps
from model_server.geometry.views import RESOLUTION, View, pixel_to_plane, project
from model_server.reconstruct.backends.hull import GRID_RESOLUTION, HullField, field_maps
from model_server.sketch.silhouette import signed_distance

MIN_ROUNDNESS = 1e-3      # below this the exponent is capped (2 / MIN_ROUNDNESS): indistinguishable from 0
TOP_BAND_DEPTH = 0.015    # top-outline area the ellipses leave uncovered deeper than this (world units) is filled


class _Rows:
    """A view's row intervals: at every pixel of the (padded) canvas, the centre and
    half-width of the run of inside pixels it lies in (world units along the view's image
    right axis), and how both change with height. Pixels outside take their nearest inside
    pixel's values, so bilinear samples near the outline stay meaningful."""

    def __init__(self, sdf: np.ndarray, view: View) -> None:
        res = sdf.shape[0]
        inside = sdf < 0
        start = inside & ~np.roll(inside, 1, axis=1)
        end = inside & ~np.roll(inside, -1, axis=1)
        left = np.full(sdf.shape, -np.inf)
        rows, cols = np.nonzero(start)
        left[rows, cols] = cols - 1 + sdf[rows, cols - 1] / (sdf[rows, cols - 1] - sdf[rows, cols])
        right = np.full(sdf.shape, np.inf)
        rows, cols = np.nonzero(end)
        right[rows, cols] = cols + sdf[rows, cols] / (sdf[rows, cols] - sdf[rows, cols + 1])
        left = np.where(inside, np.maximum.accumulate(left, axis=1), 0.0)
        right = np.where(inside, np.minimum.accumulate(right[:, ::-1], axis=1)[:, ::-1], 0.0)
        pixel = 2.0 * view.extent / res
        centre = np.where(inside, pixel_to_plane(0.0, 0.5 * (left + right), view.extent, res)[0], 0.0)
        half = np.where(inside, 0.5 * (right - left) * pixel, 0.0)
        if inside.any() and not inside.all():
            nearest = ndimage.distance_transform_edt(~inside, return_distances=False, return_indices=True)
            centre, half = centre[tuple(nearest)], half[tuple(nearest)]
        per_row = res / (2.0 * view.extent)      # d/dv = -d/drow * pixels per world unit
        half = np.maximum(half, 0.5 * pixel)
        self.view, self.res = view, res
        # centre, half-width and their derivatives in v
        self.images = np.stack([centre, half, -np.gradient(centre, axis=0) * per_row,
                                -np.gradient(half, axis=0) * per_row])

    def normalised(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each point's position across its interval, u in [-1, 1] inside, the interval's
        half-width, and the gradient of u in world coordinates (N, 3)."""
        rows, cols, _ = project(self.view, points, self.res)
        at = np.stack([rows, cols])
        centre, half, centre_dv, half_dv = (ndimage.map_coordinates(image, at, order=1, mode="nearest")
                                            for image in self.images)
        u = (points @ self.view.right - centre) / half
        gradient = (self.view.right[None, :] / half[:, None]
                    + ((-centre_dv - u * half_dv) / half)[:, None] * self.view.up[None, :])
        return u, half, gradient

    def on_grid(self, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """u and half-width at every node of the n^3 grid over ``axis`` (broadcastable,
        indexed [x, y, z]): sampled once on the view's own plane of world axes."""
        across = [k for k in range(3) if abs(self.view.direction[k]) < 0.5]
        a, b = np.meshgrid(axis, axis, indexing="ij")
        points = np.zeros((a.size, 3))
        points[:, across[0]], points[:, across[1]] = a.ravel(), b.ravel()
        u, half, _ = self.normalised(points)
        shape = [len(axis) if k in across else 1 for k in range(3)]
        return u.reshape(shape).astype(np.float32), half.reshape(shape).astype(np.float32)


def superellipse_rho(u: np.ndarray, v: np.ndarray, exponent: float) -> np.ndarray:
    """rho = (|u|^p + |v|^p)^(1/p), without overflow for large p (rho tends to
    max(|u|, |v|): the rectangle); at least 1e-12."""
    if exponent == 2.0:    # the ellipse, the default: no powers to take
        return np.maximum(np.hypot(u, v), 1e-12)
    a, b = np.abs(u), np.abs(v)
    m = np.maximum(np.maximum(a, b), 1e-12)
    return np.maximum(m * ((a / m) ** exponent + (b / m) ** exponent) ** (1.0 / exponent), 1e-12)


def superellipse(u: np.ndarray, v: np.ndarray, exponent: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rho (see :func:`superellipse_rho`) and its partial derivatives in u and v."""
    rho = superellipse_rho(u, v, exponent)
    if exponent == 2.0:
        return rho, u / rho, v / rho
    return rho, np.sign(u) * (np.abs(u) / rho) ** (exponent - 1), np.sign(v) * (np.abs(v) / rho) ** (exponent - 1)


class RoundField(HullField):
    """The round prior's field: the hull's, intersected with each height's rounded
    cross-section, and with a top view the hull's own columns where the rounded solid
    would leave the top outline uncovered (see the module docstring). Negative inside,
    about a world distance near the surface. The one function from silhouettes to a field
    that the round backend (through :func:`round_maps`) and a network starting from it share."""

    def __init__(self, silhouettes: dict[str, np.ndarray], roundness: float = 1.0) -> None:
        super().__init__(silhouettes)
        self.roundness = float(roundness)
        self.exponent = 2.0 / max(self.roundness, MIN_ROUNDNESS)
        by_name = {name: prism for name, prism in zip(silhouettes, self.prisms)}
        front, side = by_name["front"], by_name["side"]
        self.front, self.side = _Rows(front.sdf, front.view), _Rows(side.sdf, side.view)
        self.band = self._top_band(by_name["top"]) if "top" in by_name else None

    def _ellipses(self, axis: np.ndarray) -> np.ndarray:
        """The rounded cross-sections' term on the n^3 grid over ``axis``."""
        (u, half_u), (v, half_v) = self.front.on_grid(axis), self.side.on_grid(axis)
        return np.minimum(half_u, half_v) * (superellipse_rho(u, v, self.exponent) - 1.0)

    def _top_band(self, top) -> np.ndarray | None:
        """Where the rounded solid, seen from above, leaves the drawn top outline uncovered
        (deeper inside it than TOP_BAND_DEPTH, then grown back to the outline): a signed
        distance field (world units, negative inside) on a grid over the top canvas,
        indexed [x, y]; None where nothing is uncovered."""
        n = GRID_RESOLUTION
        axis = np.linspace(-top.view.extent, top.view.extent, n) * (n - 1) / n
        spacing = axis[1] - axis[0]
        solid = np.maximum(HullField.grid(self, n, axis[0], axis[-1]), self._ellipses(axis)) < 0
        x, y = np.meshgrid(axis, axis, indexing="ij")
        rows, cols, _ = project(top.view, np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1), top.res)
        drawn = ndimage.map_coordinates(top.sdf, np.stack([rows, cols]), order=1, mode="nearest").reshape(n, n)
        uncovered = (drawn < -TOP_BAND_DEPTH) & ~solid.any(axis=2)
        if not uncovered.any():
            return None
        grown = ndimage.binary_dilation(uncovered, iterations=int(np.ceil(TOP_BAND_DEPTH / spacing)) + 1)
        self.band_lo, self.band_spacing = axis[0], spacing
        band = signed_distance(grown, spacing).astype(np.float64)
        self.band_gradient = np.stack(np.gradient(band, spacing))
        return band

    def _band_at(self, image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear samples of one of the top band's grid images at world (x, y)."""
        at = (np.stack([x, y]) - self.band_lo) / self.band_spacing
        return ndimage.map_coordinates(image, at, order=1, mode="nearest")

    def _band(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The top band's value and world gradient at points (N, 3)."""
        x, y = points[:, 0], points[:, 1]
        gradient = np.zeros((len(points), 3))
        for k in range(2):
            gradient[:, k] = self._band_at(self.band_gradient[k], x, y)
        return self._band_at(self.band, x, y), gradient

    def parts(self, points: np.ndarray) -> tuple[np.ndarray, ...]:
        """The hull's f and gradient at points (N, 3), then the round prior's (the hull's
        where the hull is the nearer boundary, the rounded cross-sections' or the top
        band's elsewhere), then the half-widths of the front's and side's row intervals."""
        points = np.asarray(points, np.float64)
        hull_value, hull_gradient = super().value_and_gradient(points)
        u, half_u, grad_u = self.front.normalised(points)
        v, half_v, grad_v = self.side.normalised(points)
        rho, d_u, d_v = superellipse(u, v, self.exponent)
        scale = np.minimum(half_u, half_v)
        value = scale * (rho - 1.0)
        gradient = scale[:, None] * (d_u[:, None] * grad_u + d_v[:, None] * grad_v)
        if self.band is not None:
            band, band_gradient = self._band(points)
            nearer = band < value
            value, gradient = np.where(nearer, band, value), np.where(nearer[:, None], band_gradient, gradient)
        rounder = value > hull_value
        return (hull_value, hull_gradient, np.where(rounder, value, hull_value),
                np.where(rounder[:, None], gradient, hull_gradient), half_u, half_v)

    def value_and_gradient(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The round prior's f and its gradient at points (N, 3) (see :meth:`parts`)."""
        return self.parts(points)[2:4]

    def grids(self, n: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """The hull's f and the round prior's, sampled on an n^3 grid over [lo, hi]^3,
        indexed [x, y, z]: each view's intervals are sampled once on its own plane, then combined."""
        axis = np.linspace(lo, hi, n)
        rounded = self._ellipses(axis)
        if self.band is not None:
            x, y = np.meshgrid(axis, axis, indexing="ij")
            band = self._band_at(self.band, x.ravel(), y.ravel()).reshape(n, n)
            rounded = np.minimum(rounded, band[:, :, None].astype(np.float32))
        hull = super().grid(n, lo, hi)
        return hull, np.maximum(hull, rounded)

    def grid(self, n: int, lo: float, hi: float) -> np.ndarray:
        """The round prior's f on an n^3 grid over [lo, hi]^3, indexed [x, y, z]."""
        return self.grids(n, lo, hi)[1]


def round_maps(silhouettes: dict[str, np.ndarray], roundness: float = 1.0, res: int = RESOLUTION,
               grid_resolution: int = GRID_RESOLUTION) -> Maps:
    """Depth, normal and mask maps of the round prior in the 14 views: the one function
    from silhouettes to maps that the round backend (and a network starting from it) calls."""
    return field_maps(RoundField(silhouettes, roundness), res, grid_resolution)


class RoundBackend:
    """The ``round`` backend: maps of the rounded hull (see :func:`round_maps`)."""

    name = "round"
    depth_tolerance_px = 2.0      # its maps are exact renderings of one solid, like the hull's
    prune_votes = 1
    predicted = False             # its outlines are the drawn ones by construction

    def __init__(self, roundness: float = 1.0) -> None:
        self.roundness = roundness

    def predict(self, inks: dict[str, np.ndarray], silhouettes: dict[str, np.ndarray], res: int) -> Maps:
        """Maps of the round prior of ``silhouettes``; the inks add nothing it can use."""
        return round_maps(silhouettes, self.roundness, res)

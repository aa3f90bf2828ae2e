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

A drawn top view says what a cross-section looks like: each height's cross-section is
then the ellipse together with the top outline fitted into that height's rectangle (its
bounding box mapped onto the rectangle), all kept inside the hull (the top outline
included). So front and side rectangles over a drawn circle give a cylinder, over a drawn
square the box, and three circles a ball. The top view also pairs with each of the other
two, as front and side do: front and top share x, so at each x a front column interval
(in z) and a top column interval (in y) make a rectangle whose ellipse joins in; side
and top likewise at each y. Each pair keeps its two outlines exactly, so together they
keep all three where the fitted top outline alone would not (a cow's ears, its tail
seen from above). Roundness 0 is the hull here too.

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

MIN_ROUNDNESS = 1e-3      # below this the exponent is capped (2 / MIN_ROUNDNESS): indistinguishable from 0


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


def _columns(prism) -> "_Rows":
    """A view's column intervals (along its image up axis), as the row intervals of the
    transposed canvas seen through a view whose right is the old -up and up the old -right."""
    view = prism.view
    turned = View(view.name, view.direction, -view.up, -view.right, view.extent)
    return _Rows(np.ascontiguousarray(prism.sdf.T), turned)


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
    cross-section (see the module docstring). Negative inside, about a world distance
    near the surface. The one function from silhouettes to a field that the round backend
    (through :func:`round_maps`) and a network starting from it share."""

    def __init__(self, silhouettes: dict[str, np.ndarray], roundness: float = 1.0) -> None:
        super().__init__(silhouettes)
        self.roundness = float(roundness)
        self.exponent = 2.0 / max(self.roundness, MIN_ROUNDNESS)
        by_name = {name: prism for name, prism in zip(silhouettes, self.prisms)}
        front, side = by_name["front"], by_name["side"]
        # Pairs of views sharing an axis, each rounding the cross-sections across that axis:
        # front and side share the height; with a top view, front and top share x (their
        # column intervals: z and y), side and top share y (side columns, top rows).
        self.pairs = [(_Rows(front.sdf, front.view), _Rows(side.sdf, side.view))]
        self.top = by_name.get("top")
        if self.top is not None:
            self.pairs += [(_columns(front), _columns(self.top)), (_columns(side), _Rows(self.top.sdf, self.top.view))]
            rows, cols = np.nonzero(self.top.sdf < 0)
            u0, v1 = pixel_to_plane(rows.min() - 0.5, cols.min() - 0.5, self.top.view.extent, self.top.res)
            u1, v0 = pixel_to_plane(rows.max() + 0.5, cols.max() + 0.5, self.top.view.extent, self.top.res)
            self.top_centre = np.array([0.5 * (u0 + u1), 0.5 * (v0 + v1)])
            self.top_half = np.array([0.5 * (u1 - u0), 0.5 * (v1 - v0)])

    def value_and_gradient(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f and its gradient at points (N, 3): the hull's where the hull is the nearer
        boundary, the rounded cross-sections' (the nearest of them) elsewhere."""
        points = np.asarray(points, np.float64)
        hull_value, hull_gradient = super().value_and_gradient(points)
        value, gradient = np.full(len(points), np.inf), np.zeros((len(points), 3))
        for index, (first, second) in enumerate(self.pairs):
            u, half_u, grad_u = first.normalised(points)
            v, half_v, grad_v = second.normalised(points)
            rho, d_u, d_v = superellipse(u, v, self.exponent)
            scale = np.minimum(half_u, half_v)
            terms = [(scale * (rho - 1.0), scale[:, None] * (d_u[:, None] * grad_u + d_v[:, None] * grad_v))]
            if index == 0 and self.top is not None:
                terms.append(self._top_term(points, u, v, half_u, half_v, grad_u, grad_v))
            for term, term_gradient in terms:
                nearer = term < value
                value = np.where(nearer, term, value)
                gradient = np.where(nearer[:, None], term_gradient, gradient)
        rounder = value > hull_value
        return np.where(rounder, value, hull_value), np.where(rounder[:, None], gradient, hull_gradient)

    def _fitted(self, x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where a point of the cross-section falls in the top drawing: its position across
        the rectangle (u, v) carried onto the top outline's bounding box, blended with the
        point itself by roundness (0: the point itself, the hull)."""
        r = self.roundness
        return ((1 - r) * x + r * (self.top_centre[0] + u * self.top_half[0]),
                (1 - r) * y + r * (self.top_centre[1] + v * self.top_half[1]))

    def _top_scale(self, half_u: np.ndarray, half_v: np.ndarray) -> np.ndarray:
        """Top-drawing distances -> the cross-section's (the fitted outline is scaled)."""
        r = self.roundness
        return (1 - r) + r * np.minimum(half_u / self.top_half[0], half_v / self.top_half[1])

    def _top_term(self, points: np.ndarray, u: np.ndarray, v: np.ndarray, half_u: np.ndarray, half_v: np.ndarray,
                  grad_u: np.ndarray, grad_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The top outline fitted into each point's rectangle: its term and world gradient."""
        prism = self.top
        X, Y = self._fitted(points[:, 0], points[:, 1], u, v)
        fitted = np.stack([X, Y, np.zeros_like(X)], axis=1)
        rows, cols, _ = project(prism.view, fitted, prism.res)
        at = np.stack([rows, cols])
        sdf = ndimage.map_coordinates(prism.sdf, at, order=1, mode="nearest")
        per_px = prism.res / (2.0 * prism.view.extent)
        d_x = ndimage.map_coordinates(prism.grad_cols, at, order=1, mode="nearest") * per_px
        d_y = -ndimage.map_coordinates(prism.grad_rows, at, order=1, mode="nearest") * per_px
        r = self.roundness
        grad_x = (1 - r) * np.array([1.0, 0.0, 0.0])[None, :] + r * self.top_half[0] * grad_u
        grad_y = (1 - r) * np.array([0.0, 1.0, 0.0])[None, :] + r * self.top_half[1] * grad_v
        scale = self._top_scale(half_u, half_v)
        return scale * sdf, scale[:, None] * (d_x[:, None] * grad_x + d_y[:, None] * grad_y)

    def grid(self, n: int, lo: float, hi: float) -> np.ndarray:
        """f sampled on an n^3 grid over [lo, hi]^3, indexed [x, y, z]: each view's
        intervals are sampled once on its own plane, then combined. The fitted top outline
        is looked up only where it can change the surface (inside the hull, outside the
        ellipses, within two grid spacings of either)."""
        axis = np.linspace(lo, hi, n)
        hull = super().grid(n, lo, hi)
        rounded = np.full((n, n, n), np.inf, np.float32)
        for first, second in self.pairs:
            (u, half_u), (v, half_v) = first.on_grid(axis), second.on_grid(axis)
            rho = superellipse_rho(u, v, self.exponent)
            rounded = np.minimum(rounded, np.minimum(half_u, half_v) * (rho - 1.0))
        if self.top is not None:
            (u, half_u), (v, half_v) = (rows.on_grid(axis) for rows in self.pairs[0])
            band = 2.0 * (hi - lo) / (n - 1)
            near = np.nonzero((rounded > -band) & (hull < band))
            x, y = axis[near[0]], axis[near[1]]
            at_u, at_v = (near[0], 0, near[2]), (0, near[1], near[2])
            X, Y = self._fitted(x, y, u[at_u], v[at_v])
            rows, cols, _ = project(self.top.view, np.stack([X, Y, np.zeros_like(X)], axis=1), self.top.res)
            sdf = ndimage.map_coordinates(self.top.sdf, np.stack([rows, cols]), order=1, mode="nearest")
            rounded[near] = np.minimum(rounded[near], self._top_scale(half_u[at_u], half_v[at_v]) * sdf)
        return np.maximum(hull, rounded)


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

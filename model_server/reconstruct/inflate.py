"""One view alone: the 14 views' maps of a single silhouette, inflated.

With only the front (or only the side) drawn, the depth of the object is unknown. Like
Teddy (Igarashi et al. 1999) and the NijiGPen add-on, we guess it: thickness grows with
the distance to the outline, rounded, symmetric about the drawing plane.

The solid is the union of balls centred on the drawing plane: one at every inside point
c, as big as c's distance d(c) to the outline (see ``ball_radii``). Its half-thickness
at a point p of the plane is h(p) = sqrt(H(p)) with

    H(p) = max over c of  d(c)² - |p - c|²

so a disk of radius R inflates to the sphere of radius R, and a band of half-width w to a
round tube of radius w. Along the spoke from a medial point of radius R to the outline,
h = sqrt(d (2R - d)), Teddy's profile with R the local medial radius: long thin parts get
proportionally thin, round cross-sections, and the silhouette in the drawn view is the
drawn one. H is a maximum of paraboloids and separable (a max along rows, then along
columns). Every silhouette pixel gets a ball of at least MIN_RADIUS_PX, and parts whose
ball is smaller than MIN_HALF_THICKNESS_PX are stretched in depth alone, so a stem two or
three pixels wide stays a closed solid some pixels thick.

In the drawn view's frame (u right, v up, t towards the viewer) the solid is
G(p, t) = t² - Q(p) <= 0, with Q = H stretched for thin parts and blurred away from the
outline (see ``_smoothed``). It is meshed with surface nets on a coarse grid (grown
slightly, so thin parts have a sample inside), its vertices pulled onto G = 0 with Newton
steps, ray-cast in the 14 views, and each hit refined along its ray, as the hull backend
does; normals are the gradient of G. The drawn view itself is written from Q directly:
its mask is the silhouette and its depth -sqrt(Q), exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from model_server.errors import BAD_INPUT, Refused
from model_server.geometry.maps import Maps
from model_server.geometry.raycast import assemble_maps, cast
from model_server.geometry.surface_nets import snap_to_surface, surface_nets
from model_server.geometry.views import INPUT_VIEWS, VIEWS, View, normals_to_world, pixel_to_plane, project
from model_server.sketch.silhouette import signed_distance

INFLATABLE_VIEWS = ("front", "side")
DISTANCE_SMOOTHING_PX = 0.75    # removes the outline's pixel staircase from d
DEEP_CORRECTION_PX = 0.3        # d deep inside a curved outline is this much short (see ball_radii)
DEEP_RAMP_PX = 4.0              # ... reached this far in; the outline itself stays put
SMOOTHING_PX = 2.5              # blurs the facets between balls and the creases between parts (inside only)
MIN_RADIUS_PX = 0.5             # every silhouette pixel gets a ball at least this big, so none is lost
MIN_HALF_THICKNESS_PX = 1.25    # thinner parts are stretched in depth to this half-thickness
MARGIN_PX = 6                   # the field is worked out this far beyond the outline
GRID_STRIDE_PX = 2              # surface-net spacing, in canvas pixels
GROWTH_PX2 = 1.0                # the coarse surface is grown by this much of Q, so thin parts are not missed
NEWTON_STEPS = 3


def ball_radii(mask: np.ndarray) -> np.ndarray:
    """The radius of the ball at every pixel: its distance d to the outline (pixel units),
    0 outside the mask.

    d is the signed distance field blurred against the outline's staircase, but never
    lowered by the blur: the ridges, whose balls set the thickness, keep their height.
    Deep inside a curved outline the nearest outside pixel centre lies almost on the
    outline, so the half pixel the distance convention takes off is too much there; a
    ramp over the first DEEP_RAMP_PX gives part of it back without moving the outline."""
    raw = -signed_distance(mask).astype(np.float64)
    d = np.maximum(raw, ndimage.gaussian_filter(raw, DISTANCE_SMOOTHING_PX))
    d += DEEP_CORRECTION_PX * np.clip(d / DEEP_RAMP_PX, 0.0, 1.0)
    return np.where(mask, np.maximum(d, MIN_RADIUS_PX), 0.0)


def ball_union(radius: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """H(p) = max over pixels c with radius(c) > 0 of radius(c)² - |p - c|² (pixel units),
    and the radius of the ball that wins at p. Balls farther than ``reach`` pixels along an
    axis are not looked at; where none is in reach H is -inf."""
    value = np.where(radius > 0, np.square(radius, dtype=np.float64), -np.inf)
    winner = np.asarray(radius, np.float64)
    for axis in (1, 0):
        value, winner = _envelope(value.swapaxes(0, axis), winner.swapaxes(0, axis), reach)
        value, winner = value.swapaxes(0, axis), winner.swapaxes(0, axis)
    return value, winner


def _envelope(value: np.ndarray, winner: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """One axis (0) of :func:`ball_union`: best[i] = max over k of value[i + k] - k²."""
    best, best_winner = value.copy(), winner.copy()
    for k in range(1, min(reach, len(value) - 1) + 1):
        for target, source in ((slice(k, None), slice(None, -k)), (slice(None, -k), slice(k, None))):
            candidate = value[source] - k * k
            better = candidate > best[target]
            np.copyto(best[target], candidate, where=better)
            np.copyto(best_winner[target], winner[source], where=better)
    return best, best_winner


def _smoothed(q: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Q blurred away from the outline: neighbouring balls take over from one another in
    faint facets, and two parts meet in a crease; a blur removes both. It fades in from
    2 SMOOTHING_PX inside the outline, so the silhouette and thin parts stay as they are;
    on a ball it lowers Q by 2 SMOOTHING_PX², a small fraction of a pixel of thickness."""
    weight = np.clip(radius / (2.0 * SMOOTHING_PX) - 1.0, 0.0, 1.0)
    return q + weight * (ndimage.gaussian_filter(q, SMOOTHING_PX) - q)


@dataclass
class InflatedField:
    """G(p, t) = t² - Q(p) in pixel units on a crop of the drawn view's canvas.

    ``q`` is indexed [row - row0, col - col0] in the view's pixel coordinates; t is the
    distance towards the viewer from the drawing plane, in pixels."""

    view: View
    res: int
    row0: int
    col0: int
    q: np.ndarray
    q_rows: np.ndarray
    q_cols: np.ndarray

    @classmethod
    def of(cls, view: View, silhouette: np.ndarray) -> "InflatedField":
        mask = np.asarray(silhouette, bool)
        res = mask.shape[0]
        rows, cols = np.nonzero(mask)
        row0, col0 = rows.min() - MARGIN_PX, cols.min() - MARGIN_PX
        row1, col1 = rows.max() + MARGIN_PX + 1, cols.max() + MARGIN_PX + 1
        padded = np.pad(mask, MARGIN_PX)[row0 + MARGIN_PX:row1 + MARGIN_PX, col0 + MARGIN_PX:col1 + MARGIN_PX]
        radius = ball_radii(padded)
        h2, winner = ball_union(radius, int(np.ceil(radius.max())) + MARGIN_PX)
        stretch = np.maximum(1.0, MIN_HALF_THICKNESS_PX / np.maximum(winner, MIN_RADIUS_PX))
        floor = -float(MARGIN_PX) * (2.0 * radius.max() + MARGIN_PX)   # as far outside as the crop reaches
        q = np.maximum(h2 * stretch ** 2, floor)
        q = _smoothed(q, radius)
        q_rows, q_cols = np.gradient(q)
        return cls(view, res, int(row0), int(col0), q, q_rows, q_cols)

    def _sample(self, image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(image, np.stack([rows - self.row0, cols - self.col0]), order=1, mode="nearest")

    def value_and_gradient(self, rows: np.ndarray, cols: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """G and its gradient (d/drow, d/dcol, d/dt), all in pixel units, at (N,) points."""
        q = self._sample(self.q, rows, cols)
        gradient = np.stack([-self._sample(self.q_rows, rows, cols), -self._sample(self.q_cols, rows, cols), 2.0 * t], 1)
        return t * t - q, gradient

    def pixel_size(self) -> float:
        return self.view.pixel_size(self.res)

    def to_world(self, rows: np.ndarray, cols: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Pixel coordinates and t (pixels) -> world points (N, 3)."""
        u, v = pixel_to_plane(rows, cols, self.view.extent, self.res)
        toward = -self.view.direction
        return u[:, None] * self.view.right + v[:, None] * self.view.up + (t * self.pixel_size())[:, None] * toward

    def from_world(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows, cols, depth = project(self.view, points, self.res)
        return rows, cols, -depth / self.pixel_size()

    def gradient_to_world(self, gradient: np.ndarray) -> np.ndarray:
        """A (N, 3) gradient in (row, col, t) pixel units -> world units."""
        v = self.view
        return (gradient[:, 1:2] * v.right - gradient[:, 0:1] * v.up - gradient[:, 2:3] * v.direction) / self.pixel_size()

    def mesh(self, stride: int = GRID_STRIDE_PX) -> tuple[np.ndarray, np.ndarray]:
        """A closed triangle surface of G = 0 in (row, col, t) pixel coordinates, outward.

        (row, col, t) = (-up, right, towards) is right-handed, so surface nets' winding
        faces outward here too."""
        q = self.q[::stride, ::stride]
        top = np.sqrt(max(float(self.q.max()), 0.0) + GROWTH_PX2)
        steps = int(np.ceil(top / stride)) + 2
        t = stride * np.arange(-steps, steps + 1, dtype=np.float64)
        field = t[None, None, :] ** 2 - q[:, :, None] - GROWTH_PX2
        index, faces = surface_nets(field, 0.0, 1.0)
        start = np.stack([self.row0 + stride * index[:, 0], self.col0 + stride * index[:, 1],
                          stride * (index[:, 2] - steps)], 1)
        return snap_to_surface(start, lambda p: self.value_and_gradient(p[:, 0], p[:, 1], p[:, 2]),
                               NEWTON_STEPS, stride), faces

    def drawn_view(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The drawn view's hit mask, depth (world) and camera-frame normals, straight from Q."""
        hit = np.zeros((self.res, self.res), bool)
        h, w = self.q.shape
        r0, c0 = max(self.row0, 0), max(self.col0, 0)
        r1, c1 = min(self.row0 + h, self.res), min(self.col0 + w, self.res)
        crop = (slice(r0 - self.row0, r1 - self.row0), slice(c0 - self.col0, c1 - self.col0))
        q = self.q[crop]
        hit[r0:r1, c0:c1] = q > 0
        depth = np.zeros((self.res, self.res), np.float32)
        half = np.sqrt(np.maximum(q, 0.0))
        depth[r0:r1, c0:c1] = np.where(q > 0, -half * self.pixel_size(), 0.0)
        camera = np.zeros((self.res, self.res, 3))
        camera[r0:r1, c0:c1] = np.stack([-self.q_cols[crop], self.q_rows[crop], 2.0 * half], -1)
        return hit, depth, camera[hit]


def inflated_maps(view: str, silhouette: np.ndarray, res: int) -> Maps:
    """Depth, normal and mask maps in the 14 views of the inflated solid of one silhouette.

    ``silhouette`` is a bool (res, res) mask on the [-1, 1] canvas of ``view`` ('front'
    or 'side'). The solid is symmetric about the plane through the origin perpendicular
    to that view's direction; see the module docstring for its shape."""
    if view not in INFLATABLE_VIEWS:
        raise Refused(BAD_INPUT, f"Only a front or a side view can be inflated, not {view!r}.")
    mask = np.asarray(silhouette, bool)
    if mask.shape != (res, res):
        raise ValueError(f"the silhouette is {mask.shape}, not ({res}, {res})")
    if not mask.any():
        raise Refused(BAD_INPUT, f"The {view} strokes enclose no area; draw the object's closed outline there.")
    field = InflatedField.of(INPUT_VIEWS[view], mask)
    index, faces = field.mesh()
    hits = cast(field.to_world(index[:, 0], index[:, 1], index[:, 2]), faces, VIEWS, res)
    depth, normals = _refined(field, hits)
    maps = assemble_maps(hits["hit"], depth, normals)
    drawn = next(i for i, v in enumerate(VIEWS) if v.name == view)
    hit, depth, camera = field.drawn_view()
    exact = assemble_maps(hit[None], depth[None], normals_to_world(field.view, camera), [field.view])
    maps.depth[drawn], maps.normal[drawn], maps.mask[drawn] = exact.depth[0], exact.normal[0], exact.mask[0]
    return maps


def _refined(field: InflatedField, hits: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Depths (V, H, W) and world normals (one per hit) of the ray hits on the coarse mesh,
    after one Newton step along each ray onto G = 0 (limited to a grid spacing, and only
    where the ray meets the surface at a fair angle)."""
    points = hits["points"].astype(np.float64)
    directions = np.stack([v.direction for v in VIEWS])[hits["view"]]
    g, grad = field.value_and_gradient(*field.from_world(points))
    gradient = field.gradient_to_world(grad)
    slope = (gradient * directions).sum(axis=1)
    facing = slope < -0.2 * np.linalg.norm(gradient, axis=1)
    limit = GRID_STRIDE_PX * field.pixel_size()
    step = np.clip(np.where(facing, -g / np.where(facing, slope, 1.0), 0.0), -limit, limit)
    depth = hits["depth"].astype(np.float64)
    depth[hits["hit"]] += step
    _, grad = field.value_and_gradient(*field.from_world(points + step[:, None] * directions))
    return depth.astype(np.float32), field.gradient_to_world(grad)

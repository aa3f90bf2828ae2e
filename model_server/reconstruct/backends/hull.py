"""Backend 'hull': the 14 views' maps of the visual hull of the input silhouettes.

Each silhouette's 2D signed distance field, extruded along its view direction, is the
exact 3D distance field of an infinite prism; their maximum is a field f whose zero
level set is the visual hull (front ∩ side [∩ top]). f < 0 inside.

To ray-cast it we extract a triangle surface with naive surface nets on a coarse grid,
pull its vertices onto f = 0 with Newton steps on the full-resolution SDFs, let open3d
cast every pixel ray, and then refine each hit along its ray, again on f. Normals are
the gradient of the active prism's SDF, so they are smooth on curved parts and exactly
crease-sharp where two prisms meet, instead of faceted.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np
from scipy import ndimage

from model_server import interrupt
from model_server.errors import BAD_INPUT, Refused
from model_server.geometry.maps import Maps
from model_server.geometry.raycast import assemble_maps, cast
from model_server.geometry.surface_nets import snap_to_surface, surface_nets
from model_server.geometry.views import INPUT_VIEWS, RESOLUTION, VIEWS, View, project
from model_server.sketch.silhouette import signed_distance

GRID_RESOLUTION = 128   # surface-net samples per axis over the canvas cube
GRID_MARGIN = 3         # extra grid samples beyond the canvas on each side
SDF_PAD_PX = 12         # the 2D fields extend this far beyond the canvas
SDF_SMOOTHING_PX = 0.75  # removes pixel staircase from the gradients
NEWTON_STEPS = 3
COARSE_DILATION = 0.5    # grid spacings the coarse surface is grown by, so thin parts are not missed


@dataclasses.dataclass
class _Prism:
    view: View          # the input view, with the padded canvas's extent
    res: int            # padded SDF resolution
    sdf: np.ndarray     # (res, res) world units, negative inside
    grad_rows: np.ndarray
    grad_cols: np.ndarray


def _bilinear(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at continuous (rows, cols) ``pixels`` (2, N), clamped at the border."""
    return ndimage.map_coordinates(image, pixels, order=1, mode="nearest")


class HullField:
    """f(p) = max over input views of the silhouette SDF at p's projection (world units)."""

    def __init__(self, silhouettes: dict[str, np.ndarray]):
        self.prisms: list[_Prism] = []
        for name, mask in silhouettes.items():
            mask = np.asarray(mask, bool)
            res = mask.shape[0]
            base = INPUT_VIEWS[name]
            pixel = 2.0 * base.extent / res
            padded = np.pad(mask, SDF_PAD_PX)
            sdf = ndimage.gaussian_filter(signed_distance(padded, pixel), SDF_SMOOTHING_PX)
            grad_rows, grad_cols = np.gradient(sdf)
            view = dataclasses.replace(base, extent=base.extent * (res + 2 * SDF_PAD_PX) / res)
            self.prisms.append(_Prism(view, res + 2 * SDF_PAD_PX, sdf, grad_rows, grad_cols))

    @staticmethod
    def _pixels(prism: _Prism, points: np.ndarray) -> np.ndarray:
        rows, cols, _ = project(prism.view, points, prism.res)
        return np.stack([rows, cols])

    def terms(self, points: np.ndarray) -> np.ndarray:
        """(num_views, N): each prism's signed distance at the points."""
        return np.stack([_bilinear(p.sdf, self._pixels(p, points)) for p in self.prisms])

    def value(self, points: np.ndarray) -> np.ndarray:
        """f at points (N, 3)."""
        return self.terms(points).max(axis=0)

    def value_and_gradient(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f and the gradient of its active prism at points (N, 3)."""
        pixels = [self._pixels(p, points) for p in self.prisms]
        terms = np.stack([_bilinear(p.sdf, px) for p, px in zip(self.prisms, pixels)])
        active = terms.argmax(axis=0)
        gradient = np.zeros((len(points), 3))
        for i, (prism, px) in enumerate(zip(self.prisms, pixels)):
            sel = active == i
            if not sel.any():
                continue
            # d/drow points down the image (-up), d/dcol along right; rescale pixels -> world.
            scale = prism.res / (2.0 * prism.view.extent)
            g_rows = _bilinear(prism.grad_rows, px[:, sel]) * scale
            g_cols = _bilinear(prism.grad_cols, px[:, sel]) * scale
            gradient[sel] = g_cols[:, None] * prism.view.right - g_rows[:, None] * prism.view.up
        return terms.max(axis=0), gradient

    def normals(self, points: np.ndarray) -> np.ndarray:
        """Outward unit normals at surface points (N, 3)."""
        _, g = self.value_and_gradient(points)
        return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)

    def grid(self, n: int, lo: float, hi: float) -> np.ndarray:
        """f sampled on an n^3 grid over [lo, hi]^3, indexed [x, y, z]."""
        axis = np.linspace(lo, hi, n)
        field = np.full((n, n, n), -np.inf, np.float32)
        a, b = np.meshgrid(axis, axis, indexing="ij")
        zero = np.zeros_like(a)
        for prism in self.prisms:
            d = prism.view.direction
            if abs(d[1]) > 0.5:    # front: (x, z)
                plane = _bilinear(prism.sdf, self._pixels(prism, np.stack([a, zero, b], -1).reshape(-1, 3))).reshape(n, n)
                field = np.maximum(field, plane[:, None, :])
            elif abs(d[0]) > 0.5:  # side: (y, z)
                plane = _bilinear(prism.sdf, self._pixels(prism, np.stack([zero, a, b], -1).reshape(-1, 3))).reshape(n, n)
                field = np.maximum(field, plane[None, :, :])
            else:                  # top: (x, y)
                plane = _bilinear(prism.sdf, self._pixels(prism, np.stack([a, b, zero], -1).reshape(-1, 3))).reshape(n, n)
                field = np.maximum(field, plane[:, :, None])
        return field


class Field(Protocol):
    """A solid's field, negative inside, about a world distance near its surface: the hull's,
    or the round prior's (:mod:`.round`). Surfaced and rendered the same way."""

    def value_and_gradient(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def grid(self, n: int, lo: float, hi: float) -> np.ndarray: ...


def hull_mesh(field: Field, grid_resolution: int = GRID_RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """A closed triangle surface of the field's solid, its vertices projected onto f = 0.

    The surface is extracted from the level set f = COARSE_DILATION * spacing, not f = 0:
    a part thinner than the grid spacing (a lamp stem, a chair leg) may have no grid
    sample inside it and would vanish from every map, cutting what hangs below it off.
    Grown by half a spacing, every part has a sample inside; the Newton steps then pull
    the vertices back onto f = 0."""
    spacing = 2.0 / (grid_resolution - 1)
    lo = -1.0 - GRID_MARGIN * spacing
    n = grid_resolution + 2 * GRID_MARGIN
    values = field.grid(n, lo, lo + spacing * (n - 1))
    if not (values < 0).any():
        raise Refused(BAD_INPUT, "The views' outlines share no volume; draw front and side at the same height.")
    vertices, faces = surface_nets(values - COARSE_DILATION * spacing, lo, spacing)
    return snap_to_surface(vertices, field.value_and_gradient, NEWTON_STEPS, spacing), faces


def field_maps(field: Field, res: int = RESOLUTION, grid_resolution: int = GRID_RESOLUTION) -> Maps:
    """Depth, normal and mask maps of the field's solid in the 14 views: its surface-net
    mesh is ray-cast, and each ray hit gets one Newton step along its ray onto f = 0."""
    vertices, faces = hull_mesh(field, grid_resolution)
    interrupt.checkpoint()
    ray_step_limit = 2.0 / (grid_resolution - 1)
    hits = cast(vertices, faces, VIEWS, res)
    hit = hits["hit"]
    depth = hits["depth"].astype(np.float64)
    directions = np.stack([v.direction for v in VIEWS])[hits["view"]]
    f, g = field.value_and_gradient(hits["points"].astype(np.float64))
    slope = (g * directions).sum(axis=1)
    facing = slope < -0.2
    step = np.where(facing, -f / np.where(facing, slope, 1.0), 0.0)
    depth[hit] += np.clip(step, -ray_step_limit, ray_step_limit)
    return assemble_maps(hit, depth.astype(np.float32), g)


def hull_maps(silhouettes: dict[str, np.ndarray], res: int = RESOLUTION,
              grid_resolution: int = GRID_RESOLUTION) -> Maps:
    """Depth, normal and mask maps of the visual hull in the 14 views.

    ``silhouettes`` maps 'front', 'side' and optionally 'top' to bool masks on their
    [-1, 1] canvases."""
    return field_maps(HullField(silhouettes), res, grid_resolution)


class HullBackend:
    """The ``hull`` backend: maps of the silhouettes' visual hull (see :func:`hull_maps`)."""

    name = "hull"
    depth_tolerance_px = 2.0      # the hull's maps are exact: pruning may trust them,
    prune_votes = 1               # and one contradicting view is enough
    predicted = False

    def predict(self, inks: dict[str, np.ndarray], silhouettes: dict[str, np.ndarray], res: int) -> Maps:
        """Maps of the visual hull of ``silhouettes``; the inks add nothing a hull can use."""
        return hull_maps(silhouettes, res)

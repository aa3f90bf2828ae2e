"""The one definition of every orthographic view the project uses.

World frame is Blender's (Z up). A view has a unit viewing ``direction`` (the way the
camera looks), an image ``right`` and ``up`` axis, and a half-width ``extent``: its
square canvas spans [-extent, extent] on both image axes, centred on the origin.

A point relates to its pixel and depth by ``point = u*right + v*up + depth*direction``,
so depth is the signed distance along the view direction from the image plane through
the origin (smaller = nearer the camera). Pixel row 0 is the top of the image (+up),
column 0 its left (-right); pixel centres sit at integer (row, col).

Normals in maps are stored in the view's camera frame: x = right, y = up,
z = towards the viewer (= -direction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESOLUTION = 256
CANVAS_EXTENT = 1.0
ICOSAHEDRON_EXTENT = float(np.sqrt(3.0))


@dataclass(frozen=True, eq=False)
class View:
    """An orthographic view: camera axes in world coordinates and the canvas half-width."""

    name: str
    direction: np.ndarray
    right: np.ndarray
    up: np.ndarray
    extent: float

    @property
    def rotation(self) -> np.ndarray:
        """World -> camera rotation: rows are right, up, towards-viewer."""
        return np.stack([self.right, self.up, -self.direction])

    def pixel_size(self, res: int = RESOLUTION) -> float:
        """Width of one pixel in world units."""
        return 2.0 * self.extent / res


def _view(name: str, direction, up_hint, extent: float) -> View:
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    up = np.asarray(up_hint, np.float64)
    up = up - up.dot(d) * d
    up = up / np.linalg.norm(up)
    right = np.cross(up, -d)
    return View(name, d, right, up, extent)


def _icosahedron_vertices() -> np.ndarray:
    """The 12 unit vertices of a regular icosahedron, in a fixed order."""
    phi = (1.0 + np.sqrt(5.0)) / 2.0
    verts = []
    for a in (-1.0, 1.0):
        for b in (-phi, phi):
            verts += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    v = np.array(verts)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


FRONT = _view("front", (0, 1, 0), (0, 0, 1), CANVAS_EXTENT)
SIDE = _view("side", (-1, 0, 0), (0, 0, 1), CANVAS_EXTENT)
TOP = _view("top", (0, 0, -1), (0, 1, 0), CANVAS_EXTENT)

# The 14 output views: 0 = front, 1 = side, 2..13 = cameras at the icosahedron's
# vertices looking at the origin (world Z projected to the image plane is "up").
VIEWS: tuple[View, ...] = (FRONT, SIDE) + tuple(
    _view(f"ico{i:02d}", -vertex, (0, 0, 1), ICOSAHEDRON_EXTENT) for i, vertex in enumerate(_icosahedron_vertices())
)
NUM_VIEWS = len(VIEWS)

# The sketch input views, by the names used on the wire and in the add-on.
INPUT_VIEWS: dict[str, View] = {"front": FRONT, "side": SIDE, "top": TOP}


def plane_to_pixel(u, v, extent: float, res: int = RESOLUTION):
    """Image-plane coordinates (u, v) on a canvas of half-width ``extent`` -> continuous
    (rows, cols) pixel coordinates. The one definition of the mapping; plain arithmetic,
    so it serves numpy arrays and (differentiably) torch tensors alike."""
    scale = res / (2.0 * extent)
    return (extent - v) * scale - 0.5, (u + extent) * scale - 0.5


def pixel_to_plane(rows, cols, extent: float, res: int = RESOLUTION):
    """Continuous (rows, cols) pixel coordinates -> image-plane (u, v): the inverse of ``plane_to_pixel``."""
    size = 2.0 * extent / res
    return (cols + 0.5) * size - extent, extent - (rows + 0.5) * size


def project(view: View, points: np.ndarray, res: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World points (N, 3) -> continuous (rows, cols) pixel coordinates and depth, each (N,)."""
    p = np.asarray(points, np.float64)
    u, v, depth = (_dot(p, axis) for axis in (view.right, view.up, view.direction))
    rows, cols = plane_to_pixel(u, v, view.extent, res)
    return rows, cols, depth


def _dot(points: np.ndarray, axis: np.ndarray) -> np.ndarray:
    # Written out rather than a matmul: BLAS threads cost more than they save on (N, 3) x (3,).
    return points[:, 0] * axis[0] + points[:, 1] * axis[1] + points[:, 2] * axis[2]


def unproject(view: View, rows: np.ndarray, cols: np.ndarray, depth: np.ndarray, res: int = RESOLUTION) -> np.ndarray:
    """Pixel coordinates and depth (each (N,)) -> world points (N, 3)."""
    u, v = pixel_to_plane(np.asarray(rows, np.float64), np.asarray(cols, np.float64), view.extent, res)
    d = np.asarray(depth, np.float64)
    return u[:, None] * view.right + v[:, None] * view.up + d[:, None] * view.direction


def plane_grid(view: View, res: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of every pixel centre, each (res, res), indexed [row, col]."""
    rows, cols = np.meshgrid(np.arange(res), np.arange(res), indexing="ij")
    return pixel_to_plane(rows.astype(np.float64), cols.astype(np.float64), view.extent, res)


def normals_to_camera(view: View, normals: np.ndarray) -> np.ndarray:
    """World normals (..., 3) -> the view's camera frame (x right, y up, z to viewer)."""
    return np.asarray(normals) @ view.rotation.T


def normals_to_world(view: View, normals: np.ndarray) -> np.ndarray:
    """Camera-frame normals (..., 3) -> world normals."""
    return np.asarray(normals) @ view.rotation

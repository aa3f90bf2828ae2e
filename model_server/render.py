"""Ray-cast depth, normal and mask maps of a triangle mesh in any of the project's views.

One open3d RaycastingScene serves all views at once (one ray per pixel centre, straight
along the view direction). Normals come from interpolated vertex normals, or from a
caller's function of the hit points (the hull backend passes its analytic SDF gradient).
Used by the hull backend, by metrics, and later to make ground-truth maps of any mesh.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import open3d as o3d

from .maps import Maps
from .mesh_io import vertex_normals
from .views import RESOLUTION, VIEWS, View, plane_grid

NormalFn = Callable[[np.ndarray], np.ndarray]


def _scene(vertices: np.ndarray, faces: np.ndarray) -> o3d.t.geometry.RaycastingScene:
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(faces, np.uint32)))
    return scene


def _rays(views: Sequence[View], res: int) -> tuple[np.ndarray, float]:
    """(len(views), res, res, 6) rays starting well in front of each canvas, and that offset."""
    offset = 4.0 * max(v.extent for v in views)
    rays = np.empty((len(views), res, res, 6), np.float32)
    for i, view in enumerate(views):
        u, v = plane_grid(view, res)
        origin = u[..., None] * view.right + v[..., None] * view.up - offset * view.direction
        rays[i, ..., :3] = origin
        rays[i, ..., 3:] = view.direction
    return rays, offset


def cast(vertices: np.ndarray, faces: np.ndarray, views: Sequence[View] = VIEWS,
         res: int = RESOLUTION) -> dict[str, np.ndarray]:
    """First hits of every pixel ray: 'hit' (bool), 'depth', 'points' (world), 'triangle' and 'uv'
    (barycentric weights of the triangle's 2nd and 3rd vertex), each shaped (len(views), res, res, ...)."""
    rays, offset = _rays(views, res)
    answer = _scene(vertices, faces).cast_rays(o3d.core.Tensor(rays.reshape(-1, 6)))
    t = answer["t_hit"].numpy().reshape(len(views), res, res)
    hit = np.isfinite(t)
    depth = np.where(hit, t - offset, 0.0).astype(np.float32)
    points = rays[..., :3] + np.where(hit, t, 0.0)[..., None] * rays[..., 3:]
    triangle = answer["primitive_ids"].numpy().reshape(len(views), res, res).astype(np.int64)
    uv = answer["primitive_uvs"].numpy().reshape(len(views), res, res, 2)
    return {"hit": hit, "depth": depth, "points": points, "triangle": np.where(hit, triangle, 0), "uv": uv}


def render_maps(vertices: np.ndarray, faces: np.ndarray, res: int = RESOLUTION, views: Sequence[View] = VIEWS,
                normal_fn: NormalFn | None = None) -> Maps:
    """Depth, normal and mask maps of a triangle mesh for ``views`` (default: the 14 views).

    Normals are interpolated vertex normals unless ``normal_fn`` maps hit points (N, 3)
    to world normals."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    hits = cast(v, f, views, res)
    hit = hits["hit"]
    world = np.zeros(hit.shape + (3,), np.float64)
    if hit.any():
        if normal_fn is not None:
            world[hit] = normal_fn(hits["points"][hit])
        else:
            vn = vertex_normals(v, f).astype(np.float64)
            tri = f[hits["triangle"][hit]]
            uv = hits["uv"][hit].astype(np.float64)
            world[hit] = ((1.0 - uv[:, :1] - uv[:, 1:]) * vn[tri[:, 0]] + uv[:, :1] * vn[tri[:, 1]]
                          + uv[:, 1:] * vn[tri[:, 2]])
    return assemble_maps(hit, hits["depth"], world, views)


def assemble_maps(hit: np.ndarray, depth: np.ndarray, world_normals: np.ndarray,
                  views: Sequence[View] = VIEWS) -> Maps:
    """Maps from per-view hits (V, H, W), depths and world normals (V, H, W, 3).

    Normals are turned into each view's camera frame, made unit, and made to face the
    viewer (a first hit seen from outside always does on a well-oriented mesh; this also
    repairs flipped input). Background pixels get depth 0 and normal 0."""
    normals = np.stack([world_normals[i] @ view.rotation.T for i, view in enumerate(views)])
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = normals / np.where(length > 0, length, 1.0)
    normals *= np.where(normals[..., 2:] < 0, -1.0, 1.0)
    normals[~hit] = 0.0
    return Maps(np.where(hit, depth, 0.0), normals, hit.astype(np.float32))


def render_silhouette(vertices: np.ndarray, faces: np.ndarray, view: View, res: int = RESOLUTION) -> np.ndarray:
    """Bool (res, res) mask of the pixels whose centre ray hits the mesh in ``view``."""
    return cast(vertices, faces, [view], res)["hit"][0]

"""Ray-cast depth, normal and mask maps of a triangle mesh in any of the project's views.

One open3d RaycastingScene serves all views at once (one ray per pixel centre, straight
along the view direction). Normals come from interpolated vertex normals, or from a
caller's function of the hit points (the hull backend passes its analytic SDF gradient).
Used by the hull backend, by metrics, and later to make ground-truth maps of any mesh.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import open3d as o3d

from model_server.geometry.maps import Maps
from model_server.geometry.mesh import vertex_normals
from model_server.geometry.views import RESOLUTION, VIEWS, View, plane_grid

NormalFn = Callable[[np.ndarray], np.ndarray]


def _scene(vertices: np.ndarray, faces: np.ndarray) -> o3d.t.geometry.RaycastingScene:
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(faces, np.uint32)))
    return scene


def occupancy(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray, rays: int = 3) -> np.ndarray:
    """Bool per point: inside the mesh, by a vote of ``rays`` (odd) random rays' crossing
    parities (open3d). Exact for watertight meshes; for an open one a point is inside when
    most rays leave through the surface rather than through its holes, which holds for
    the small gaps of real models' seams, and more rays make the vote steadier."""
    query = o3d.core.Tensor(np.ascontiguousarray(points, np.float32))
    return _scene(vertices, faces).compute_occupancy(query, nsamples=rays).numpy() > 0.5


SEAL_NODES = 2     # grid_occupancy closes holes up to about twice this many grid spacings


def grid_occupancy(vertices: np.ndarray, faces: np.ndarray, axis: np.ndarray, rays: int = 7) -> np.ndarray:
    """Bool (n, n, n), indexed [x, y, z]: which nodes of the grid over ``axis`` lie inside
    the mesh, robust to the holes and single-sided sheets of real models.

    Ray votes alone (:func:`occupancy`) streak outwards from an open model: a ray through
    a single-sided sheet counts one crossing. So the inside is found by filling instead:
    the nodes within half a spacing of the surface make a shell that no 6-connected path
    can cross, grown by SEAL_NODES nodes to seal holes up to about twice that many
    spacings; everything the grid's border cannot reach through it, shrunk back by as many
    nodes and less the shell, is the interior. Shell nodes next to the interior (its
    boundary: within two nodes of it, half a spacing of the surface on either side) are inside when the rays
    vote so, which is exact there; shell nodes away from it are sheets (a panel, the walls
    of a container open wider than the seal) and are kept as a solid one or two nodes thick."""
    from scipy import ndimage

    n = len(axis)
    spacing = float(axis[1] - axis[0])
    nodes = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.float32)
    scene = _scene(vertices, faces)
    distance = scene.compute_distance(o3d.core.Tensor(nodes)).numpy().reshape(n, n, n)
    shell = distance <= 0.5 * spacing * 1.01
    sealed = ndimage.binary_dilation(shell, iterations=SEAL_NODES)
    labels, _ = ndimage.label(~sealed)
    border = np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(), labels[:, :, [0, -1]].ravel()]))
    outside = np.isin(labels, border[border > 0])
    interior = ndimage.binary_erosion(~outside, iterations=SEAL_NODES, border_value=0) & ~shell
    bounding = shell & ndimage.binary_dilation(interior, np.ones((3, 3, 3), bool), iterations=2)
    voted = np.zeros(n ** 3, bool)
    ask = bounding.ravel()
    if ask.any():
        voted[ask] = scene.compute_occupancy(o3d.core.Tensor(nodes[ask]), nsamples=rays).numpy() > 0.5
    return interior | voted.reshape(n, n, n) | (shell & ~bounding)


@lru_cache(maxsize=8)
def _rays(views: tuple[View, ...], res: int) -> tuple[o3d.core.Tensor, np.ndarray, float]:
    """Rays starting well in front of each canvas, as an open3d tensor (len(views)·res², 6) and
    as numpy (len(views), res, res, 6), and that offset. Cached: the views are fixed objects."""
    offset = 4.0 * max(v.extent for v in views)
    rays = np.empty((len(views), res, res, 6), np.float32)
    for i, view in enumerate(views):
        u, v = plane_grid(view, res)
        rays[i, ..., :3] = u[..., None] * view.right + v[..., None] * view.up - offset * view.direction
        rays[i, ..., 3:] = view.direction
    rays.setflags(write=False)
    return o3d.core.Tensor(rays.reshape(-1, 6)), rays, offset


def cast(vertices: np.ndarray, faces: np.ndarray, views: Sequence[View] = VIEWS,
         res: int = RESOLUTION) -> dict[str, np.ndarray]:
    """First hits of every pixel ray.

    'hit' (bool) and 'depth' are shaped (len(views), res, res); 'points' (world), 'triangle',
    'uv' (barycentric weights of the triangle's 2nd and 3rd vertex) and 'view' (view index)
    hold one row per hit pixel, in the order of ``np.nonzero(hit)``."""
    tensor, rays, offset = _rays(tuple(views), res)
    answer = _scene(vertices, faces).cast_rays(tensor)
    t = answer["t_hit"].numpy().reshape(len(views), res, res)
    hit = np.isfinite(t)
    depth = np.where(hit, t - offset, 0.0).astype(np.float32)
    flat_hit = hit.reshape(-1)
    ray = rays.reshape(-1, 6)[flat_hit]
    points = ray[:, :3] + t.reshape(-1)[flat_hit, None] * ray[:, 3:]
    triangle = answer["primitive_ids"].numpy().reshape(-1)[flat_hit].astype(np.int64)
    uv = answer["primitive_uvs"].numpy().reshape(-1, 2)[flat_hit]
    return {"hit": hit, "depth": depth, "points": points, "triangle": triangle, "uv": uv,
            "view": np.nonzero(hit)[0]}


def render_maps(vertices: np.ndarray, faces: np.ndarray, res: int = RESOLUTION, views: Sequence[View] = VIEWS,
                normal_fn: NormalFn | None = None) -> Maps:
    """Depth, normal and mask maps of a triangle mesh for ``views`` (default: the 14 views).

    Normals are interpolated vertex normals unless ``normal_fn`` maps hit points (N, 3)
    to world normals."""
    f = np.asarray(faces, np.int64)
    hits = cast(vertices, f, views, res)
    if normal_fn is not None:
        world = normal_fn(hits["points"].astype(np.float64))
    else:
        vn = vertex_normals(vertices, f).astype(np.float32)
        tri, uv = f[hits["triangle"]], hits["uv"]
        world = (1.0 - uv[:, :1] - uv[:, 1:]) * vn[tri[:, 0]] + uv[:, :1] * vn[tri[:, 1]] + uv[:, 1:] * vn[tri[:, 2]]
    return assemble_maps(hits["hit"], hits["depth"], world, views)


def assemble_maps(hit: np.ndarray, depth: np.ndarray, world_normals: np.ndarray,
                  views: Sequence[View] = VIEWS) -> Maps:
    """Maps from per-view hits (V, H, W), depths (V, H, W) and the world normals of the hit
    pixels (N, 3, in the order of ``np.nonzero(hit)``).

    Normals are turned into each view's camera frame, made unit, and made to face the
    viewer (a first hit seen from outside always does on a well-oriented mesh; this also
    repairs flipped input). Background pixels get depth 0 and normal 0."""
    rotations = np.stack([view.rotation for view in views]).astype(np.float32)
    camera = np.einsum("nij,nj->ni", rotations[np.nonzero(hit)[0]], np.asarray(world_normals, np.float32))
    camera /= np.maximum(np.linalg.norm(camera, axis=1, keepdims=True), 1e-12)
    camera *= np.where(camera[:, 2:] < 0, -1.0, 1.0).astype(np.float32)
    normals = np.zeros(hit.shape + (3,), np.float32)
    normals[hit] = camera
    return Maps(np.where(hit, depth, 0.0).astype(np.float32), normals, hit.astype(np.float32))


def render_silhouette(vertices: np.ndarray, faces: np.ndarray, view: View, res: int = RESOLUTION) -> np.ndarray:
    """Bool (res, res) mask of the pixels whose centre ray hits the mesh in ``view``."""
    return cast(vertices, faces, [view], res)["hit"][0]

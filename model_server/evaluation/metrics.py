"""Quality measures of a reconstructed mesh: silhouette IoU against a sketch, closedness,
and the 3D measures of the evaluation against a ground-truth mesh.

The 3D measures work on surface samples (Chamfer, normal consistency, F-score) or on an
occupancy grid (volumetric IoU). In the canonical frame the canvases span [-1, 1], a frame
size of 2, so F-score thresholds of 1% and 2% of the frame are 0.02 and 0.04.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from model_server.geometry.mesh import face_normals
from model_server.geometry.raycast import occupancy, render_silhouette
from model_server.geometry.views import View
from model_server.sketch.silhouette import fill_silhouette, iou

Mesh = tuple[np.ndarray, np.ndarray]   # (vertices (V, 3), faces (F, 3))

FRAME_SIZE = 2.0                                            # the canonical frame spans [-1, 1]
F_SCORE_THRESHOLDS = {"1%": 0.01 * FRAME_SIZE, "2%": 0.02 * FRAME_SIZE}
SURFACE_SAMPLES = 20_000
VOLUME_RESOLUTION = 64


def silhouette_iou(vertices: np.ndarray, faces: np.ndarray, mask: np.ndarray, view: View) -> float:
    """IoU of the mesh's ray-cast silhouette in ``view`` against ``mask`` (res x res, same canvas)."""
    return iou(render_silhouette(vertices, faces, view, np.asarray(mask).shape[0]), mask)


def sketch_silhouette_iou(vertices: np.ndarray, faces: np.ndarray, ink: np.ndarray, view: View) -> float:
    """IoU of the mesh's silhouette in ``view`` against the filled silhouette of a sketch's ink
    (res x res on the same canvas): how well the reconstruction matches what was drawn."""
    return silhouette_iou(vertices, faces, fill_silhouette(ink), view)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int = SURFACE_SAMPLES,
                   rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points spread uniformly over the surface (triangles picked in proportion to their
    area, then a uniform point inside each) and the unit normals of their triangles.

    Returns (points (n, 3), normals (n, 3)), float64; normals follow the faces' winding."""
    rng = np.random.default_rng() if rng is None else rng
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    cross = face_normals(v, f, unit=False)
    area = np.linalg.norm(cross, axis=1)
    if len(f) == 0 or area.sum() <= 0.0:
        raise ValueError("the mesh has no surface area to sample")
    tri = rng.choice(len(f), size=n, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    a, b, c = v[f[tri, 0]], v[f[tri, 1]], v[f[tri, 2]]
    points = (1.0 - r1)[:, None] * a + (r1 * (1.0 - r2))[:, None] * b + (r1 * r2)[:, None] * c
    normals = cross[tri] / np.where(area[tri] > 0.0, area[tri], 1.0)[:, None]
    return points, normals


def nearest(points: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each of ``points`` to its nearest neighbour in ``targets``, and that neighbour's index."""
    distance, index = cKDTree(np.asarray(targets, np.float64)).query(np.asarray(points, np.float64))
    return distance, index


def chamfer(a_pts: np.ndarray, b_pts: np.ndarray) -> float:
    """Symmetric Chamfer distance: the mean of the two directions' mean nearest-neighbour
    distances (not squared), in the points' units. 0 for identical point sets."""
    return 0.5 * float(nearest(a_pts, b_pts)[0].mean() + nearest(b_pts, a_pts)[0].mean())


def f_score(a_pts: np.ndarray, b_pts: np.ndarray, threshold: float) -> float:
    """F-score at distance ``threshold``: the harmonic mean of precision (share of ``a_pts``,
    the reconstruction, within the threshold of ``b_pts``, the ground truth) and recall (the
    other way round). 1 for identical point sets; 0 when nothing is within reach."""
    precision = float((nearest(a_pts, b_pts)[0] <= threshold).mean())
    recall = float((nearest(b_pts, a_pts)[0] <= threshold).mean())
    return 2.0 * precision * recall / (precision + recall) if precision + recall > 0.0 else 0.0


def normal_consistency(a_pts: np.ndarray, a_normals: np.ndarray, b_pts: np.ndarray, b_normals: np.ndarray) -> float:
    """Mean |cos| of the angle between each sample's normal and its nearest neighbour's normal
    on the other surface, averaged over both directions. 1 = normals agree everywhere
    (orientation is ignored, so an inside-out surface is not penalised here)."""
    def one_way(p, pn, q, qn) -> float:
        _, index = nearest(p, q)
        return float(np.abs(np.einsum("ij,ij->i", _unit(pn), _unit(qn)[index])).mean())

    return 0.5 * (one_way(a_pts, a_normals, b_pts, b_normals) + one_way(b_pts, b_normals, a_pts, a_normals))


def volumetric_iou(mesh_a: Mesh, mesh_b: Mesh, res: int = VOLUME_RESOLUTION,
                   bounds: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """IoU of the volumes two watertight meshes enclose, on a res^3 grid of cell centres.

    The grid spans ``bounds`` (lo, hi), by default the union of the two meshes' bounding
    boxes with ``res`` cells along every axis (pass ``(-1, 1)`` bounds for the fixed canonical
    cube). Occupancy is found by ray parity, so both meshes must be watertight; for an
    open mesh the result is approximate."""
    if bounds is None:
        stacked = np.concatenate([np.asarray(mesh_a[0], np.float64), np.asarray(mesh_b[0], np.float64)])
        lo, hi = stacked.min(axis=0), stacked.max(axis=0)
    else:
        lo, hi = (np.broadcast_to(np.asarray(b, np.float64), (3,)) for b in bounds)
    axes = [lo[i] + (np.arange(res) + 0.5) * (hi[i] - lo[i]) / res for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return iou(occupancy(*mesh_a, grid), occupancy(*mesh_b, grid))


def _unit(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, np.float64)
    length = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(length > 0.0, length, 1.0)

"""Naive surface nets: a closed triangle mesh of the zero level set of a 3D grid field.

Used by the hull backend (the visual hull's field) and by the procedural shapes of the
training data (their signed distance fields).
"""

from __future__ import annotations

import numpy as np


def surface_nets(field: np.ndarray, lo: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Naive surface nets of the level set field = 0 (negative inside), vectorised.

    One vertex per grid cell that the surface crosses, at the mean of its edge crossings;
    one quad (two triangles) per crossed grid edge, wound so normals point to positive
    field. The field must be positive on the grid's border, which makes the mesh closed.
    Only crossed edges are visited, so the cost follows the surface area."""
    inside = field < 0
    cells = np.array(field.shape) - 1
    strides = np.array([cells[1] * cells[2], cells[2], 1])
    crossings = []
    for axis in range(3):
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        pos = np.argwhere(inside[tuple(lower)] != inside[tuple(upper)])
        step = np.eye(3, dtype=np.int64)[axis]
        f0 = field[pos[:, 0], pos[:, 1], pos[:, 2]].astype(np.float64)
        f1 = field[pos[:, 0] + step[0], pos[:, 1] + step[1], pos[:, 2] + step[2]].astype(np.float64)
        point = pos + (f0 / (f0 - f1))[:, None] * step
        crossings.append((axis, pos, point, f0 < 0))

    cell_ids, cell_points = [], []
    for axis, pos, point, _ in crossings:
        b, c = (axis + 1) % 3, (axis + 2) % 3
        for ob in (0, -1):
            for oc in (0, -1):
                cell = pos.copy()
                cell[:, b] += ob
                cell[:, c] += oc
                ok = np.all((cell >= 0) & (cell < cells), axis=1)
                cell_ids.append(cell[ok] @ strides)
                cell_points.append(point[ok])
    ids = np.concatenate(cell_ids)
    pts = np.concatenate(cell_points)
    active, slot = np.unique(ids, return_inverse=True)
    count = np.bincount(slot, minlength=len(active))
    mean = np.stack([np.bincount(slot, pts[:, k], minlength=len(active)) for k in range(3)], axis=1) / count[:, None]
    vertices = lo + spacing * mean

    faces = []
    for axis, pos, _, starts_inside in crossings:
        b, c = (axis + 1) % 3, (axis + 2) % 3   # b x c = axis, so this quad order faces +axis
        interior = (pos[:, b] >= 1) & (pos[:, c] >= 1) & (pos[:, b] < cells[b]) & (pos[:, c] < cells[c])
        pos, starts_inside = pos[interior], starts_inside[interior]
        quad = []
        for ob, oc in ((-1, -1), (0, -1), (0, 0), (-1, 0)):
            cell = pos.copy()
            cell[:, b] += ob
            cell[:, c] += oc
            quad.append(np.searchsorted(active, cell @ strides))
        quad = np.stack(quad, axis=1)
        quad[~starts_inside] = quad[~starts_inside][:, ::-1]
        faces.append(np.concatenate([quad[:, [0, 1, 2]], quad[:, [0, 2, 3]]]))
    return vertices, np.concatenate(faces).astype(np.int64)


def snap_to_surface(points: np.ndarray, value_and_gradient, steps: int, max_step: float) -> np.ndarray:
    """Newton steps moving ``points`` (N, 3) onto the zero level set of a field.

    ``value_and_gradient(points)`` gives the field (N,) and its gradient (N, 3) there. Each
    step moves a point by f g / |g|², cut to ``max_step`` long, so a poor gradient far from
    the surface cannot throw a vertex across a thin part. Used after surface nets, whose
    vertices sit up to a grid spacing off the surface."""
    points = np.asarray(points, np.float64)
    for _ in range(steps):
        f, g = value_and_gradient(points)
        step = f[:, None] * g / np.maximum((g * g).sum(axis=1, keepdims=True), 1e-12)
        length = np.linalg.norm(step, axis=1, keepdims=True)
        points = points - step * np.minimum(1.0, max_step / np.maximum(length, 1e-12))
    return points

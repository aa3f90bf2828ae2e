"""Quality measures of a reconstructed mesh: silhouette IoU against a sketch, closedness."""

from __future__ import annotations

import numpy as np

from .render import render_silhouette
from .views import View


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def silhouette_iou(vertices: np.ndarray, faces: np.ndarray, mask: np.ndarray, view: View) -> float:
    """IoU of the mesh's ray-cast silhouette in ``view`` against ``mask`` (res x res, same canvas)."""
    return iou(render_silhouette(vertices, faces, view, np.asarray(mask).shape[0]), mask)


def closed_and_oriented(faces: np.ndarray) -> bool:
    """True when every edge is shared by exactly two faces that traverse it in opposite
    directions: a closed, consistently oriented surface (a cheap topological check)."""
    f = np.asarray(faces, np.int64)
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    if len(np.unique(directed, axis=0)) != len(directed):
        return False
    base = int(f.max()) + 1
    forward = directed[:, 0] * base + directed[:, 1]
    backward = directed[:, 1] * base + directed[:, 0]
    return bool(np.isin(backward, forward).all())


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed mesh; positive when its faces wind outward."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    return float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6.0)

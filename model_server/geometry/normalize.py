"""World <-> canonical frame for stroke sketches.

Blender strokes can sit anywhere at any size. The network (and the fixed-size canvases)
expect the object centred with its largest extent 1.7, like the evaluation meshes. One
centre and one uniform scale, fitted from the strokes of all views, map the sketch in and
the reconstructed mesh back out, so the mesh overlays the strokes in world space.

Which world axes a view's stroke coordinates measure: front (x, z), side (y, z), top (x, y).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TARGET_EXTENT = 1.7
VIEW_AXES: dict[str, tuple[int, int]] = {"front": (0, 2), "side": (1, 2), "top": (0, 1)}


@dataclass(frozen=True)
class Normalization:
    """canonical = (world - centre) * scale."""

    centre: np.ndarray
    scale: float

    def to_canonical(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> canonical points."""
        return (np.asarray(points, np.float64) - self.centre) * self.scale

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """Canonical points (N, 3) -> world points."""
        return np.asarray(points, np.float64) / self.scale + self.centre

    def strokes_to_canonical(self, view: str, strokes: list[np.ndarray]) -> list[np.ndarray]:
        """One view's strokes, (N, 2) or (N, 3) with pressure, from world to canonical view-plane coordinates."""
        centre = self.centre[list(VIEW_AXES[view])]
        out = []
        for stroke in strokes:
            s = np.array(stroke, np.float64).reshape(len(stroke), -1)
            s[:, :2] = (s[:, :2] - centre) * self.scale
            out.append(s)
        return out


def canonical_vertices(vertices: np.ndarray, target_extent: float = TARGET_EXTENT) -> np.ndarray:
    """A mesh's vertices in the canonical frame: bounding box centred on the origin, largest
    side ``target_extent``. Raises ValueError for a mesh with no extent."""
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(axis=0), v.max(axis=0)
    size = float((hi - lo).max())
    if not np.isfinite(size) or size <= 0.0:
        raise ValueError("the mesh has no extent")
    return (v - 0.5 * (lo + hi)) * (target_extent / size)


def fit_normalization(strokes: dict[str, list[np.ndarray]], target_extent: float = TARGET_EXTENT) -> Normalization:
    """Centre the union of the views' bounding boxes and scale its largest side to ``target_extent``.

    Each world axis is bounded by every view that sees it (x: front, top; y: side, top;
    z: front, side). Axes no view measures (impossible once front and side are drawn)
    stay centred at 0."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for view, view_strokes in strokes.items():
        pts = [np.asarray(s, np.float64).reshape(len(s), -1)[:, :2] for s in view_strokes if len(s)]
        if not pts:
            continue
        p = np.concatenate(pts)
        axes = list(VIEW_AXES[view])
        lo[axes] = np.minimum(lo[axes], p.min(axis=0))
        hi[axes] = np.maximum(hi[axes], p.max(axis=0))
    seen = np.isfinite(lo)
    centre = np.zeros(3)
    centre[seen] = 0.5 * (lo[seen] + hi[seen])
    size = float(np.max(hi[seen] - lo[seen])) if seen.any() else 0.0
    if not np.isfinite(size) or size <= 0.0:
        raise ValueError("the sketch has no extent to normalise")
    return Normalization(centre, target_extent / size)

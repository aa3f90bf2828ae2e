"""Ink image -> filled silhouette: the area enclosed by the outer contours of the strokes.

Strokes are thresholded, small gaps are closed with a disk, enclosed regions are filled,
and the stroke's own half-width is then taken off again so the silhouette's edge lies on
the drawn line's centre (no net growth). Specks are dropped. If an outline has a gap too
wide for the first closing, wider disks are tried before giving up.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

INK_THRESHOLD = 0.5
CLOSING_RADII_PX = (3, 6, 10, 16)
MIN_FILL_RATIO = 1.5      # the fill must enclose clearly more than the strokes themselves
MIN_COMPONENT_FRACTION = 0.01
SHRINK_OFFSET_PX = 0.0    # pixel-centre correction so the edge lands on the stroke centre


def disk(radius: int) -> np.ndarray:
    """Boolean disk structuring element of the given radius in pixels."""
    r = np.arange(-radius, radius + 1)
    return r[:, None] ** 2 + r[None, :] ** 2 <= radius * radius + 0.5


def stroke_width(lines: np.ndarray) -> float:
    """Typical width in pixels of the thresholded strokes (from their distance transform)."""
    if not lines.any():
        return 0.0
    inner = ndimage.distance_transform_edt(lines)[lines]
    return max(1.0, 4.0 * float(inner.mean()) - 2.0)


def fill_silhouette(ink: np.ndarray, threshold: float = INK_THRESHOLD) -> np.ndarray:
    """Bool mask, same shape as ``ink``, of the area the strokes enclose.

    Gaps are bridged by growing the strokes by a radius r, filling what they enclose and
    shrinking the fill by r again (a closing of the filled shape; plain closing of the lines
    would not bridge two collinear stroke ends). r grows only if the outline stays open;
    an outline that stays open even then gives an empty mask."""
    lines = np.asarray(ink) >= threshold
    if not lines.any():
        return np.zeros(lines.shape, bool)
    pad = max(CLOSING_RADII_PX) + 2
    padded = np.pad(lines, pad)
    distance_to_line = ndimage.distance_transform_edt(~padded)
    half_width = 0.5 * stroke_width(lines)
    for radius in CLOSING_RADII_PX:
        grown = ndimage.binary_fill_holes(distance_to_line <= radius)
        depth = ndimage.distance_transform_edt(grown)
        filled = depth > radius + half_width + SHRINK_OFFSET_PX
        if filled.sum() >= MIN_FILL_RATIO * lines.sum():
            return _drop_specks(filled[pad:-pad, pad:-pad])
    return np.zeros(lines.shape, bool)


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= MIN_COMPONENT_FRACTION * sizes.max()) + 1
    return np.isin(labels, keep)


def signed_distance(mask: np.ndarray, pixel_size: float = 1.0) -> np.ndarray:
    """Signed distance to the mask's edge (negative inside), in units of ``pixel_size``.

    The edge is taken half a pixel outside the outermost inside pixel centres; the image
    border counts as outside."""
    padded = np.pad(np.asarray(mask, bool), 1)
    outside = ndimage.distance_transform_edt(~padded)
    inside = ndimage.distance_transform_edt(padded)
    sdf = np.where(padded, 0.5 - inside, outside - 0.5)[1:-1, 1:-1]
    return (sdf * pixel_size).astype(np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0

"""Ink image -> silhouette: what the strokes enclose, plus the strokes themselves.

Strokes are thresholded, small gaps are closed with a disk, enclosed regions are filled,
and the stroke's own half-width is then taken off again so the silhouette's edge lies on
the drawn line's centre (no net growth). If an outline has a gap too wide for the first
closing, wider disks are tried.

A line that encloses nothing is a thin part (a stem, a leg, an antenna, a wing seen
edge-on): it joins the silhouette as a solid at least ``MIN_THIN_WIDTH_PX`` wide. What is
not a part: specks (stray dots, tiny marks), and short spurs where a line overshoots an
outline it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

INK_THRESHOLD = 0.5
CLOSING_RADII_PX = (3, 6, 10, 16)
MIN_FILL_RATIO = 1.5      # a closing is accepted once the fill encloses clearly more than the strokes
MIN_COMPONENT_FRACTION = 0.01
MIN_THIN_WIDTH_PX = 3     # a line that encloses nothing becomes a solid at least this wide
SPUR_FRACTION = 0.06      # lines leaving an outline for less than this share of the sketch's size are overshoots
SPECK_FRACTION = 0.05     # parts smaller than this share of the sketch's size are specks


@dataclass(frozen=True)
class Silhouette:
    """A view's silhouette (bool, res x res) and its thin parts: the pixels that come from
    lines enclosing nothing, a subset of ``mask``."""

    mask: np.ndarray
    thin: np.ndarray


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
    """Bool mask, same shape as ``ink``: the silhouette :func:`read_silhouette` reads."""
    return read_silhouette(ink, threshold).mask


def read_silhouette(ink: np.ndarray, threshold: float = INK_THRESHOLD) -> Silhouette:
    """The silhouette of a view's ink: the area its strokes enclose, plus every line that
    encloses nothing as a thin solid, without specks and overshoot spurs."""
    lines = np.asarray(ink) >= threshold
    empty = np.zeros(lines.shape, bool)
    if not lines.any():
        return Silhouette(empty, empty)
    rows, cols = np.nonzero(lines)
    size = float(max(np.ptp(rows), np.ptp(cols)) + 1)
    filled = _enclosed(lines)
    reach = int(np.ceil(0.5 * stroke_width(lines))) + 1
    loose = lines & ~ndimage.binary_dilation(filled, disk(reach)) if filled.any() else lines
    loose = _drop_spurs(loose, filled, SPUR_FRACTION * size, reach + 2)
    thin = ndimage.binary_dilation(loose, disk(MIN_THIN_WIDTH_PX // 2)) & ~filled
    # A speck is small next to the drawing, or next to the canvas when a view holds little else.
    mask = _drop_specks(filled | thin, SPECK_FRACTION * max(size, 0.5 * lines.shape[0]))
    return Silhouette(mask, thin & mask)


def _enclosed(lines: np.ndarray) -> np.ndarray:
    """The area the lines enclose, its edge on the middle of the drawn line.

    Gaps are bridged by growing the lines by a radius r and filling what they enclose
    (plain closing of the lines would not bridge two collinear stroke ends). The pixels
    farther than r from every line are surely inside; every pixel of the closed shape
    then goes to whichever it is nearer, that inside or the outside, so the edge runs
    down the middle of the ink, however wide it is drawn (a line gone over twice is as
    wide as both) and across the middle of a bridged gap. r grows only while the fill
    stays small next to the ink; if no radius gets there (a drawing mostly of thin
    parts), the smallest radius's fill is used. Paper the lines close in by themselves is
    inside however narrow: the tip of a spout, a wing drawn edge-on as a slim outline."""
    pad = max(CLOSING_RADII_PX) + 2
    padded = np.pad(lines, pad)
    distance_to_line = ndimage.distance_transform_edt(~padded)
    holes = ndimage.binary_fill_holes(padded) & ~padded    # paper the lines close in by themselves
    fills = []
    for radius in CLOSING_RADII_PX:
        grown = distance_to_line <= radius
        closed = ndimage.binary_fill_holes(grown)
        inside = closed & ~grown
        if inside.any() or holes.any():
            # Paper first: what the lines close in is inside, to the tip of every narrowing
            # part; the rest of the closed shape (bridged gaps, the margin round the outside)
            # goes to the nearer of sure inside and sure outside. Then the ink, by the nearer
            # side of paper: the edge runs down the ink's middle.
            bridged = closed & (ndimage.distance_transform_edt(~inside) < ndimage.distance_transform_edt(closed))
            paper = ~padded & (holes | bridged)
            paper_outside = ~padded & ~paper
            to_inside = ndimage.distance_transform_edt(~paper)
            to_outside = ndimage.distance_transform_edt(~paper_outside)
            # A pixel on the exact middle (an ink band an odd number of pixels wide) goes
            # inside where the outline faces down or right and outside where it faces up
            # or left: such bands move the edge by half a pixel without growing or
            # shrinking the fill, and the edge stays smooth.
            rows, cols = np.gradient(to_inside)
            ink_inside = padded & ((to_inside < to_outside) | ((to_inside == to_outside) & (rows + cols > 0)))
            filled = (paper | ink_inside)[pad:-pad, pad:-pad]
        else:
            filled = np.zeros(lines.shape, bool)
        if filled.sum() >= MIN_FILL_RATIO * lines.sum():
            return filled
        fills.append(filled)
    return fills[0]


def _drop_spurs(loose: np.ndarray, filled: np.ndarray, length: float, touch: int) -> np.ndarray:
    """``loose`` lines without the pieces that come within ``touch`` pixels of the filled
    area and stay shorter than ``length`` pixels: a line overshooting its outline, not a
    part of its own."""
    if not loose.any() or not filled.any():
        return loose
    labels, count = ndimage.label(loose, structure=np.ones((3, 3)))
    touching = np.unique(labels[ndimage.binary_dilation(filled, disk(touch)) & loose])
    keep = np.ones(count + 1, bool)
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        extent = max(box[0].stop - box[0].start, box[1].stop - box[1].start)
        if label in touching and extent < length:
            keep[label] = False
    keep[0] = False
    return keep[labels]


def _drop_specks(mask: np.ndarray, extent: float) -> np.ndarray:
    """Drop specks: parts shorter than ``extent`` pixels, unless their area is a fair share
    (MIN_COMPONENT_FRACTION) of the largest real part. A view of specks alone is empty."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    spans = np.array([max(box[0].stop - box[0].start, box[1].stop - box[1].start)
                      for box in ndimage.find_objects(labels)])
    long = spans >= extent
    largest = sizes[long].max() if long.any() else np.inf
    keep = np.concatenate([[False], long | (sizes >= MIN_COMPONENT_FRACTION * largest)])
    return keep[labels]


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

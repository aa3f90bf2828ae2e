"""The lines of one view of a shape, found in its ground-truth renders (depth, camera-frame
normals and mask, see :mod:`model_server.geometry.raycast`) in image space and traced into
chains of pixels:

- silhouette: the mask's boundary (outer outline and holes);
- depth discontinuities: neighbouring pixels whose depth jumps more than their normals
  explain (an object part in front of another);
- creases: neighbouring normals that turn by more than ``CREASE_DEGREES``;
- suggestive contours (on request): valleys of n·v, the image-space stand-in for
  DeCarlo et al.'s zero crossings of radial curvature.

:mod:`model_server.learning.data.sketches` draws these chains as strokes in a style.
Lengths are given in pixels of a 256-pixel canvas and scaled to the actual resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from model_server.geometry.views import CANVAS_EXTENT

REFERENCE_RES = 256          # the resolution the pixel lengths below are tuned for

CREASE_DEGREES = 38.0        # normals turning more than this across two pixels make a crease
DISCONTINUITY_PX = 2.5       # a depth jump beyond the normals' slope by this many pixels is an edge
MAX_SLOPE = 20.0             # cap on |dz/dx| read from grazing normals
SUGGESTIVE_SIGMA_PX = 1.5    # smoothing of n·v before looking for its valleys
SUGGESTIVE_STRENGTH = 0.003  # least valley curvature of n·v (per pixel^2 at 256)
SUGGESTIVE_MAX_NV = 0.9      # valleys on surfaces facing the viewer more squarely are shading, not lines
SILHOUETTE_CLEARANCE_PX = 2  # interior lines this close to the silhouette are left to it
MIN_LINE_PX = 4              # shorter interior line pieces are noise
CROP_MARGIN_PX = 8           # line finding looks this far around the mask's bounding box

_OFFSETS = ((0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1))  # 4-neighbours first


@dataclass
class ViewLines:
    """One view's traced lines, as chains of (row, col) pixel coordinates."""

    res: int
    silhouette: list[np.ndarray]
    interior: list[np.ndarray]      # creases and depth discontinuities
    suggestive: list[np.ndarray]


def trace_view(depth: np.ndarray, normal: np.ndarray, mask: np.ndarray, suggestive: bool = True) -> ViewLines:
    """Find and trace one view's lines from its depth (R, R), camera-frame normals (R, R, 3) and bool mask.

    The work is done on the mask's bounding box (plus a margin), which is often much
    smaller than the canvas."""
    res = mask.shape[0]
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return ViewLines(res, [], [], [])
    r0, c0 = max(0, rows.min() - CROP_MARGIN_PX), max(0, cols.min() - CROP_MARGIN_PX)
    crop = (slice(r0, rows.max() + CROP_MARGIN_PX + 1), slice(c0, cols.max() + CROP_MARGIN_PX + 1))
    lines = _find_lines(depth[crop], normal[crop], mask[crop], res, suggestive)
    origin = np.array([r0, c0], np.float64)
    return ViewLines(res, *([c + origin for c in chains] for chains in lines))


def _find_lines(depth: np.ndarray, normal: np.ndarray, mask: np.ndarray, res: int,
                suggestive: bool) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Silhouette, interior and suggestive chains of one (cropped) view."""
    scale = res / REFERENCE_RES
    silhouette = mask & ~ndimage.binary_erosion(mask)
    near_silhouette = _grow(silhouette, SILHOUETTE_CLEARANCE_PX * scale)
    interior = (creases(normal, mask) | depth_discontinuities(depth, normal, mask, res)) & ~near_silhouette
    interior = drop_small_pieces(interior, MIN_LINE_PX * scale)
    suggest = np.zeros_like(mask)
    if suggestive:
        clearance = _grow(silhouette | interior, 3 * scale)
        suggest = drop_small_pieces(suggestive_contours(normal, mask, scale) & ~clearance, 2 * MIN_LINE_PX * scale)
    outward = _outward_directions(mask)
    sil_chains = [c + 0.5 * outward[:, c[:, 0].astype(int), c[:, 1].astype(int)].T for c in trace_chains(silhouette)]
    return sil_chains, trace_chains(interior), trace_chains(suggest)


# --- Finding lines ------------------------------------------------------------------------------

def _grow(mask: np.ndarray, radius: float) -> np.ndarray:
    """The mask grown by a square of half-width ``radius`` pixels (at least one)."""
    size = 2 * max(1, round(radius)) + 1
    return ndimage.maximum_filter(mask.view(np.uint8), size) > 0


def _shifted(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """a[r + dr, c + dc] for every pixel (r, c), with zeros beyond the border."""
    out = np.zeros_like(a)
    h, w = a.shape[:2]
    out[max(0, -dr):h - max(0, dr), max(0, -dc):w - max(0, dc)] = a[max(0, dr):h - max(0, -dr), max(0, dc):w - max(0, -dc)]
    return out


def creases(normal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pixels where the normal turns sharply between the two neighbours on either side, thinned
    to the strongest pixel across the line."""
    limit = 1.0 - np.cos(np.radians(CREASE_DEGREES))
    channels = [np.ascontiguousarray(normal[..., k]) for k in range(3)]
    out = np.zeros(mask.shape, bool)
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        dot = sum(_shifted(n, -dr, -dc) * _shifted(n, dr, dc) for n in channels)
        both = mask & _shifted(mask, -dr, -dc) & _shifted(mask, dr, dc)
        turn = np.where(both, 1.0 - dot, 0.0)
        out |= (turn > limit) & (turn >= _shifted(turn, dr, dc)) & (turn > _shifted(turn, -dr, -dc))
    return out


def depth_discontinuities(depth: np.ndarray, normal: np.ndarray, mask: np.ndarray, res: int) -> np.ndarray:
    """The nearer pixel of each neighbouring pair whose depth jump the surface slope cannot explain."""
    pixel = 2.0 * CANVAS_EXTENT / res
    nz = np.maximum(normal[..., 2], 1.0 / MAX_SLOPE)
    out = np.zeros(mask.shape, bool)
    for (dr, dc), axis in (((0, 1), 0), ((1, 0), 1)):
        slope = np.minimum(np.abs(normal[..., axis]) / nz, MAX_SLOPE)
        jump = _shifted(depth, dr, dc) - depth
        allowed = pixel * (DISCONTINUITY_PX + 1.5 * np.maximum(slope, _shifted(slope, dr, dc)))
        edge = mask & _shifted(mask, dr, dc) & (np.abs(jump) > allowed)
        out |= edge & (jump > 0)                              # this pixel is the nearer one
        out |= _shifted(edge & (jump < 0), -dr, -dc)          # the neighbour is
    return out


def suggestive_contours(normal: np.ndarray, mask: np.ndarray, scale: float) -> np.ndarray:
    """Valleys of n·v: pixels where the smoothed n·v image is lowest across its strongest
    upward curvature, a cheap image-space version of suggestive contours."""
    nv = ndimage.gaussian_filter(np.where(mask, normal[..., 2], 0.0), max(0.7, SUGGESTIVE_SIGMA_PX * scale))
    d_r, d_c = np.gradient(nv)
    d_rr, d_rc = np.gradient(d_r)
    _, d_cc = np.gradient(d_c)
    half_trace, half_diff = 0.5 * (d_rr + d_cc), 0.5 * (d_rr - d_cc)
    curvature = half_trace + np.hypot(half_diff, d_rc)
    angle = 0.5 * np.arctan2(2.0 * d_rc, d_rr - d_cc)       # direction of that curvature (rows, cols)
    octant = np.round(angle / (np.pi / 4)).astype(int) % 4   # 0: rows, 1: diagonal, 2: cols, 3: anti-diagonal
    lowest = np.zeros(mask.shape, bool)
    for k, (dr, dc) in enumerate(((1, 0), (1, 1), (0, 1), (1, -1))):
        lowest |= (octant == k) & (nv <= _shifted(nv, dr, dc)) & (nv < _shifted(nv, -dr, -dc))
    strong = curvature > SUGGESTIVE_STRENGTH / scale ** 2
    return mask & lowest & strong & (normal[..., 2] < SUGGESTIVE_MAX_NV)


def drop_small_pieces(lines: np.ndarray, min_pixels: float) -> np.ndarray:
    """Remove 8-connected pieces of fewer than ``min_pixels`` pixels."""
    labels, count = ndimage.label(lines, np.ones((3, 3), bool))
    if count == 0:
        return lines
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[labels]


def _outward_directions(mask: np.ndarray) -> np.ndarray:
    """(2, R, R) unit vectors (rows, cols) pointing out of the mask near its edge."""
    blurred = ndimage.gaussian_filter(mask.astype(np.float32), 1.0)
    g = -np.stack(np.gradient(blurred))
    return g / np.maximum(np.linalg.norm(g, axis=0), 1e-6)


def trace_chains(lines: np.ndarray, min_points: int = 2) -> list[np.ndarray]:
    """Order the pixels of a thin line image into chains (N, 2) of (row, col), float64.

    Walks from line ends first, preferring 4-neighbours so staircases are not cut short;
    a chain that comes back next to its start is closed by repeating the start."""
    rows, cols = np.nonzero(lines)
    if len(rows) == 0:
        return []
    ids = np.full((lines.shape[0] + 2, lines.shape[1] + 2), -1, np.int64)
    ids[rows + 1, cols + 1] = np.arange(len(rows))
    neighbours = np.stack([ids[rows + 1 + dr, cols + 1 + dc] for dr, dc in _OFFSETS], axis=1)
    degree = (neighbours >= 0).sum(axis=1)
    order = np.argsort(degree != 1, kind="stable").tolist()  # line ends first
    table = [[j for j in row if j >= 0] for row in neighbours.tolist()]
    visited = bytearray(len(rows))
    chains = []
    for start in order:
        if visited[start]:
            continue
        visited[start] = 1
        forward = _walk(start, table, visited)
        backward = _walk(start, table, visited)
        chain = backward[::-1] + [start] + forward
        if len(chain) > 3 and chain[-1] in table[chain[0]]:
            chain.append(chain[0])
        if len(chain) >= min_points:
            chains.append(np.stack([rows[chain], cols[chain]], axis=1).astype(np.float64))
    return chains


def _walk(start: int, table: list[list[int]], visited: bytearray) -> list[int]:
    path, current = [], start
    while True:
        for j in table[current]:
            if not visited[j]:
                break
        else:
            return path
        visited[j] = 1
        path.append(j)
        current = j

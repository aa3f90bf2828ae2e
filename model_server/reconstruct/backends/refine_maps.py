"""What the learned backend's network sees and how its answer becomes maps: the one
definition shared by training-data generation and the running backend.

The network refines the visual hull (see :mod:`.hull`) rather than guessing maps from
nothing. The hull is exact in the sketched views' silhouettes and everywhere else an
upper bound of the shape, so the network only has to say, per view and pixel:

- how much deeper than the hull the surface lies (a non-negative offset),
- whether the hull's pixel shows the object at all (carving holes, cavities, the corners
  of boxy cross-sections), and
- a correction of the hull's normal.

Inputs, per view at ``NET_RESOLUTION`` (half the maps' resolution; the corrections are
smooth, and the hull's own full-resolution maps carry the detail):
hull depth, hull normal (3), hull mask, and the sketch's ink *lifted onto the hull*: each
hull pixel's 3D point projected into the front, side and top drawings, so interior
strokes (a mug's rim, a crease) show up where they lie; then a flag for a drawn top.

Answers are applied conservatively (:func:`refined_maps`): the result never leaves the
hull, so the sketched silhouettes survive by construction; a pixel is carved away only
where the network is confident, and never in a part of the hull's mask narrower than
``PROTECTED_WIDTH_PX``, so thin parts a sketch shows (a lamp's stem, chair legs) stay.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from model_server.geometry.maps import Maps
from model_server.geometry.views import INPUT_VIEWS, VIEWS, project, unproject
from model_server.sketch.silhouette import disk

NET_RESOLUTION = 128
INPUT_CHANNELS = 9          # depth, normal xyz, mask, ink front/side/top, top drawn
INK_VIEWS = ("front", "side", "top")
INK_REACH_PX = 1            # lifted ink is read as the darkest ink within this many pixels
CARVE_BELOW = 0.3           # a hull pixel is carved away only when the network's mask is below this
PROTECTED_WIDTH_PX = 7      # ... and never in a part of the hull's mask narrower than this (at the maps' resolution)


def downsample(maps: Maps, factor: int) -> Maps:
    """Maps at 1/``factor`` of their resolution: a pixel is foreground when most of its
    block is, and takes the mean depth and normal of the block's foreground pixels."""
    v, res, _ = maps.depth.shape
    r = res // factor

    def blocks(a: np.ndarray) -> np.ndarray:
        return a.reshape(v, r, factor, r, factor, *a.shape[3:]).sum(axis=(2, 4))

    fg = maps.foreground().astype(np.float32)
    count = blocks(fg)
    mean_depth = blocks(maps.depth * fg) / np.maximum(count, 1.0)
    normal = blocks(maps.normal * fg[..., None])
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-6)
    mask = count >= 0.5 * factor * factor
    return Maps(np.where(mask, mean_depth, 0.0), normal * mask[..., None], mask)


def lift_ink(maps: Maps, inks: dict[str, np.ndarray]) -> np.ndarray:
    """(V, 3, R, R) float32: for every foreground pixel of every view, the ink of the
    front, side and top drawings where its 3D point projects (0 for a missing drawing)."""
    res = maps.resolution
    lifted = np.zeros((maps.num_views, len(INK_VIEWS), res, res), np.float32)
    reach = {name: ndimage.maximum_filter(np.asarray(ink, np.float32), size=2 * INK_REACH_PX + 1)
             for name, ink in inks.items() if name in INK_VIEWS}
    fg = maps.foreground()
    for i, view in enumerate(VIEWS[:maps.num_views]):
        rows, cols = np.nonzero(fg[i])
        if not len(rows):
            continue
        points = unproject(view, rows, cols, maps.depth[i][rows, cols], res)
        for k, name in enumerate(INK_VIEWS):
            if name not in reach:
                continue
            ink = reach[name]
            r, c, _ = project(INPUT_VIEWS[name], points, ink.shape[0])
            lifted[i, k, rows, cols] = ndimage.map_coordinates(ink, np.stack([r, c]), order=1, mode="constant")
    return lifted


def network_inputs(hull: Maps, inks: dict[str, np.ndarray]) -> np.ndarray:
    """(V, INPUT_CHANNELS, NET_RESOLUTION, NET_RESOLUTION) float32 from the hull's
    full-resolution maps and the sketch's ink images."""
    small = downsample(hull, hull.resolution // NET_RESOLUTION)
    top = np.full((small.num_views, 1, NET_RESOLUTION, NET_RESOLUTION), float("top" in inks), np.float32)
    return np.concatenate([small.depth[:, None], np.moveaxis(small.normal, -1, 1), small.mask[:, None],
                           lift_ink(small, inks), top], axis=1).astype(np.float32)


def _upsample(a: np.ndarray, res: int) -> np.ndarray:
    """(..., r, r) -> (..., res, res) for res = 2^k r: bilinear, pixel centres aligned, edges
    clamped (the inverse of :func:`downsample`'s blocks). Written out, as it is ~20x faster
    than ``ndimage.zoom``."""
    out = np.asarray(a, np.float32)
    while out.shape[-1] < res:
        for axis in (-2, -1):
            n = out.shape[axis]
            before = np.take(out, np.clip(np.arange(n) - 1, 0, n - 1), axis=axis)
            after = np.take(out, np.clip(np.arange(n) + 1, 0, n - 1), axis=axis)
            pair = np.stack([0.75 * out + 0.25 * before, 0.75 * out + 0.25 * after], axis=axis)
            shape = list(out.shape)
            shape[axis] = 2 * n
            out = pair.reshape(shape)
    if out.shape[-1] != res:
        raise ValueError(f"cannot upsample {a.shape[-1]} pixels to {res}")
    return out


def protected(mask: np.ndarray, width_px: int = PROTECTED_WIDTH_PX) -> np.ndarray:
    """Bool (V, R, R): the parts of each view's mask narrower than ``width_px``, which no
    carving may remove (a part is narrow where no disk that wide inside the mask covers it)."""
    structure = disk(width_px // 2)
    out = np.zeros(mask.shape, bool)
    for i, m in enumerate(mask):
        if m.any():
            out[i] = m & ~ndimage.binary_opening(m, structure=structure)
    return ndimage.binary_dilation(out, structure=np.ones((1, 3, 3), bool))


def refined_maps(hull: Maps, offset: np.ndarray, mask_probability: np.ndarray, normal_correction: np.ndarray) -> Maps:
    """The hull's full-resolution maps refined by the network's low-resolution answers:
    ``offset`` (V, r, r) >= 0 world units deeper, ``mask_probability`` (V, r, r) and
    ``normal_correction`` (V, 3, r, r), added to the hull's camera-frame normals."""
    res = hull.resolution
    hull_fg = hull.foreground()
    keep = (_upsample(mask_probability, res) >= CARVE_BELOW) | protected(hull_fg)
    mask = hull_fg & keep
    depth = np.where(mask, hull.depth + np.maximum(_upsample(offset, res), 0.0), 0.0)
    normal = hull.normal + np.moveaxis(_upsample(normal_correction, res), 1, -1)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-6)
    normal[..., 2] = np.maximum(normal[..., 2], 0.0)   # a visible surface faces the camera
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-6)
    return Maps(depth, normal * mask[..., None], mask)

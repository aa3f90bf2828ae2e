"""Front and side drawn at slightly different heights, lined up before the hull is cut.

Both views measure the object's height (world Z), so on a true sketch their silhouettes
span the same rows. Artists never draw them exactly alike; left as drawn, the hull cuts
the taller view's top or bottom off. Within ``MAX_MISMATCH`` the side view is scaled and
moved vertically onto the front's span (the front is the reference: it is drawn first).
Beyond that the views are too different to guess which is meant: they are left as drawn,
as before this existed, and the user is told; views that share no height at all are
refused, as before.

The alignment is one map ``v -> scale * v + shift`` of the side view's vertical canvas
coordinate, applied alike to its ink, its silhouette and its strokes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from model_server.errors import BAD_INPUT, Refused
from model_server.geometry.views import CANVAS_EXTENT, pixel_to_plane, plane_to_pixel

MAX_MISMATCH = 0.10     # the most the two heights may differ, as a share of the taller
NOTICEABLE = 0.005      # smaller corrections (under a pixel or so) are made but not reported
NO_SHARED_HEIGHT = "The views' outlines share no volume; draw front and side at the same height."


@dataclass(frozen=True)
class VerticalAlignment:
    """The side view's vertical map ``v -> scale * v + shift`` (canvas units); ``mismatch``
    is how much the heights differed, as a share of the taller, and ``height`` is the
    front's (canvas units), against which a move is told."""

    scale: float = 1.0
    shift: float = 0.0
    mismatch: float = 0.0
    height: float = 1.0

    def note(self) -> str | None:
        """The sentence that tells the user what was done, or None when it was imperceptible."""
        if self.mismatch > MAX_MISMATCH:
            return (f"The front and side views differ in height by {self.mismatch:.0%}, too much to line them up, "
                    f"so only the height both share is built; draw them at the same height for the whole shape.")
        if abs(self.scale - 1.0) >= NOTICEABLE:
            return f"The side view was scaled by {self.scale:.2f} to match the front's height."
        if abs(self.shift) >= NOTICEABLE * self.height:
            direction = "up" if self.shift > 0 else "down"
            return (f"The side view was moved {direction} by {abs(self.shift) / self.height:.0%} of its height "
                    f"to line up with the front.")
        return None

    def strokes(self, strokes: list[np.ndarray]) -> list[np.ndarray]:
        """Canvas-plane strokes (N, 2+) with their v coordinate mapped."""
        out = []
        for stroke in strokes:
            s = np.array(stroke, np.float64)
            s[:, 1] = self.scale * s[:, 1] + self.shift
            out.append(s)
        return out

    def image(self, image: np.ndarray, order: int) -> np.ndarray:
        """A (res, res) canvas image resampled under the map (``order`` 0 for masks, 1 for ink)."""
        res = image.shape[0]
        rows, cols = np.meshgrid(np.arange(res, dtype=np.float64), np.arange(res, dtype=np.float64), indexing="ij")
        _, v = pixel_to_plane(rows, cols, CANVAS_EXTENT, res)
        source_rows, _ = plane_to_pixel(0.0, (v - self.shift) / self.scale, CANVAS_EXTENT, res)
        warped = ndimage.map_coordinates(np.asarray(image, np.float32), [source_rows, cols], order=order,
                                         mode="constant", cval=0.0)
        return warped > 0.5 if image.dtype == bool else warped.astype(image.dtype)


def vertical_span(mask: np.ndarray) -> tuple[float, float]:
    """(bottom, top) canvas v of a silhouette: half a pixel beyond its outermost pixel centres."""
    res = mask.shape[0]
    rows = np.flatnonzero(np.asarray(mask, bool).any(axis=1))
    half = CANVAS_EXTENT / res
    _, top = pixel_to_plane(float(rows.min()), 0.0, CANVAS_EXTENT, res)
    _, bottom = pixel_to_plane(float(rows.max()), 0.0, CANVAS_EXTENT, res)
    return bottom - half, top + half


def align_side_to_front(front: np.ndarray, side: np.ndarray) -> VerticalAlignment:
    """The map that puts the side silhouette's vertical span onto the front's; no map
    (only the mismatch) when their heights differ by more than MAX_MISMATCH of the
    taller one. Refused when the spans do not overlap."""
    front_lo, front_hi = vertical_span(front)
    side_lo, side_hi = vertical_span(side)
    if side_lo >= front_hi or front_lo >= side_hi:
        raise Refused(BAD_INPUT, NO_SHARED_HEIGHT)
    front_height, side_height = front_hi - front_lo, side_hi - side_lo
    mismatch = abs(front_height - side_height) / max(front_height, side_height)
    if mismatch > MAX_MISMATCH:
        return VerticalAlignment(mismatch=mismatch, height=front_height)
    scale = front_height / side_height
    return VerticalAlignment(scale, front_lo - scale * side_lo, mismatch, front_height)

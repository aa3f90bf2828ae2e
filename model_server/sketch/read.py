"""A sketch as the reconstruction reads it: each view's ink, filled silhouette, thin parts
and canonical strokes, with the side lined up with the front (:mod:`.align`).

Training data reads its sketches here too, so the network learns from sketches read
exactly as a user's are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_server.errors import BAD_INPUT, Refused
from model_server.sketch.align import align_side_to_front
from model_server.sketch.silhouette import read_silhouette

MAIN_VIEWS = ("front", "side")   # at least one of these is drawn; both give the true shape


@dataclass
class Sketch:
    """A sketch as read: per view its ink, silhouette, thin parts and canonical strokes
    (none for PNG input), after lining the side up with the front, and what was done."""

    images: dict[str, np.ndarray]
    silhouettes: dict[str, np.ndarray]
    thin: dict[str, np.ndarray]
    strokes: dict[str, list[np.ndarray]]
    notes: list[str]

    @property
    def main_views(self) -> tuple[str, ...]:
        """The views of MAIN_VIEWS that are drawn (one or both)."""
        return tuple(view for view in MAIN_VIEWS if view in self.silhouettes)


def read_sketch(images: dict[str, np.ndarray], strokes: dict[str, list[np.ndarray]]) -> Sketch:
    """Silhouettes of the ink images: each drawn view must show a part, at least one of
    front and side is drawn, an empty top is dropped, and the side is lined up with the front."""
    read = {view: read_silhouette(ink) for view, ink in images.items()}
    for view in MAIN_VIEWS:
        if view in read and not read[view].mask.any():
            raise Refused(BAD_INPUT, f"The {view} strokes show no part; draw the object's outline there.")
    if not any(view in read for view in MAIN_VIEWS):
        raise Refused(BAD_INPUT, "The sketch has no front or side strokes; draw the object's outline on the Front "
                                 "layer, the Side layer or both.")
    if "top" in read and not read["top"].mask.any():
        del read["top"]
    sketch = Sketch({view: images[view] for view in read}, {view: s.mask for view, s in read.items()},
                    {view: s.thin for view, s in read.items()}, dict(strokes), [])
    if "front" in read and "side" in read:
        alignment = align_side_to_front(sketch.silhouettes["front"], sketch.silhouettes["side"])
        if alignment.scale != 1.0 or alignment.shift != 0.0:
            sketch.images["side"] = alignment.image(sketch.images["side"], order=1)
            sketch.silhouettes["side"] = alignment.image(sketch.silhouettes["side"], order=0)
            sketch.thin["side"] = alignment.image(sketch.thin["side"], order=0) & sketch.silhouettes["side"]
            if "side" in sketch.strokes:
                sketch.strokes["side"] = alignment.strokes(sketch.strokes["side"])
        note = alignment.note()
        if note:
            sketch.notes.append(note)
    return sketch

"""What the pipeline hands back: a reconstruction (:class:`Result`) or a mesh fitted to a
sketch (:class:`Fitted`), each with the report the server and the command line give."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Result:
    """A reconstructed mesh and how it was made."""

    vertices: np.ndarray            # (V, 3) float32
    faces: np.ndarray               # (F, 3) int32, outward, watertight
    timings: dict[str, float]       # seconds per stage (rasterize, predict, fuse, snap, trust, refine), poisson, total
    backend: str
    device: str
    silhouettes: dict[str, np.ndarray] = field(default_factory=dict)  # bool res x res per input view, canonical frame
    fit: dict | None = None         # Fit to strokes summary (iou_before/after, flipped_faces, ...) when refined
    notes: list[str] = field(default_factory=list)   # sentences for the user: what was done to the sketch
    fusion: str = ""                # how the closed surface was made (which Poisson attempt, or a fallback)
    thin: dict[str, np.ndarray] = field(default_factory=dict)  # bool res x res: the thin parts of each silhouette

    def summary(self) -> dict:
        """The JSON-ready report of the reconstruction (everything but the mesh, the
        silhouettes and the thin parts): the server's result and the command line's
        ``--report``. ``fit`` only when the mesh was refined."""
        report = {"backend": self.backend, "device": self.device, "vertices": int(len(self.vertices)),
                  "faces": int(len(self.faces)), "timings_s": dict(self.timings), "notes": list(self.notes),
                  "fusion": self.fusion}
        if self.fit:
            report["fit"] = self.fit
        return report


@dataclass
class Fitted:
    """A mesh fitted to a sketch: vertices in the caller's frame plus the fit's report."""

    vertices: np.ndarray            # (V, 3) float32
    summary: dict                   # iou_before, iou_after, flipped_faces, iterations, cancelled, ...
    log: list[dict[str, float]]     # per iteration: every loss term, its weight, the total

"""The reconstruction pipeline: sketches in, a watertight mesh out. Servers and the CLI call only this.

Stages (each timed): rasterize (strokes or PNG ink -> filled silhouettes), predict (the
backend's 14-view maps), fuse (oriented points, pruning, cleaning), poisson (surface),
refine (Fit to strokes; not built yet, always 0). ``progress(message, fraction)`` is
called between stages and may raise to cancel the job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from sketch2mesh_addon import protocol
from sketch2mesh_addon.protocol import ProtocolError

from .normalize import fit_normalization
from .rasterize import load_png_sketch as _load_png_sketch
from .rasterize import rasterize_strokes, resample_ink
from .silhouette import fill_silhouette
from .views import INPUT_VIEWS, RESOLUTION

Progress = Callable[[str, float], None]

LEARNED_UNAVAILABLE = "The learned backend has no trained weights yet; choose the Hull backend (--backend hull)."


@dataclass
class Result:
    """A reconstructed mesh and how it was made."""

    vertices: np.ndarray            # (V, 3) float32
    faces: np.ndarray               # (F, 3) int32, outward, watertight
    timings: dict[str, float]       # rasterize, predict, fuse, poisson, refine, total (seconds)
    backend: str
    device: str
    silhouettes: dict[str, np.ndarray] = field(default_factory=dict)  # bool res x res per input view, canonical frame


def load_png_sketch(path: str | Path) -> np.ndarray:
    """A PNG sketch as an ink image at the network resolution; ProtocolError('bad_input') if unusable."""
    return _load_png_sketch(path, RESOLUTION)


def reconstruct_images(inks: dict[str, np.ndarray], backend: str = "hull", detail: str = "medium",
                       device: str = "cpu", progress: Progress | None = None) -> Result:
    """Reconstruct from ink images on the [-1, 1] canvases of 'front', 'side' and optionally 'top'.

    The mesh is in that same frame (nothing is rescaled)."""
    started = time.perf_counter()
    _check_options(backend, detail)
    unknown = set(inks) - set(INPUT_VIEWS)
    if unknown:
        raise ProtocolError("bad_input", f"Unknown view(s) {', '.join(sorted(unknown))}; expected front, side and top.")
    for view in protocol.REQUIRED_VIEWS:
        if view not in inks:
            raise ProtocolError("bad_input", f"The {view} sketch is missing; front and side are both required.")
    report = progress or (lambda message, fraction: None)
    report("Reading the sketch", 0.0)
    timings = {"rasterize": 0.0}
    t0 = time.perf_counter()
    images = {view: resample_ink(ink, RESOLUTION) for view, ink in inks.items()}
    timings["rasterize"] = time.perf_counter() - t0
    return _reconstruct(images, backend, detail, report, timings, started)


def reconstruct_strokes(strokes: dict[str, list[np.ndarray]], backend: str = "hull", detail: str = "medium",
                        device: str = "cpu", progress: Progress | None = None) -> Result:
    """Reconstruct from strokes: view -> list of (N, 3) (u, v, pressure) in world view-plane coordinates.

    The sketch is normalised into the canonical frame, reconstructed, and the mesh is
    mapped back so it overlays the strokes in world space."""
    started = time.perf_counter()
    _check_options(backend, detail)
    protocol.check_strokes(strokes)
    report = progress or (lambda message, fraction: None)
    report("Rasterising strokes", 0.0)
    t0 = time.perf_counter()
    drawn = {view: [s for s in view_strokes if len(s)] for view, view_strokes in strokes.items()}
    drawn = {view: view_strokes for view, view_strokes in drawn.items() if view_strokes}
    frame = fit_normalization(drawn)
    images = {view: rasterize_strokes(frame.strokes_to_canonical(view, view_strokes), res=RESOLUTION)
              for view, view_strokes in drawn.items()}
    timings = {"rasterize": time.perf_counter() - t0}
    result = _reconstruct(images, backend, detail, report, timings, started)
    result.vertices = frame.to_world(result.vertices).astype(np.float32)
    result.timings["total"] = time.perf_counter() - started
    return result


def _check_options(backend: str, detail: str) -> None:
    if backend not in protocol.BACKENDS:
        raise ProtocolError("bad_request", f"backend must be one of {', '.join(protocol.BACKENDS)}, not {backend!r}")
    if detail not in protocol.DETAILS:
        raise ProtocolError("bad_request", f"detail must be one of {', '.join(protocol.DETAILS)}, not {detail!r}")
    if backend == "learned":
        raise ProtocolError("unavailable", LEARNED_UNAVAILABLE)


def _reconstruct(images: dict[str, np.ndarray], backend: str, detail: str, report: Progress,
                 timings: dict[str, float], started: float) -> Result:
    from . import fusion, hull

    t0 = time.perf_counter()
    silhouettes = {view: fill_silhouette(ink) for view, ink in images.items()}
    for view in protocol.REQUIRED_VIEWS:
        if not silhouettes[view].any():
            raise ProtocolError("bad_input", f"The {view} strokes enclose no area; draw the object's closed outline there.")
    if "top" in silhouettes and not silhouettes["top"].any():
        del silhouettes["top"]
    timings["rasterize"] += time.perf_counter() - t0

    report("Predicting the views (hull)", 0.15)
    t0 = time.perf_counter()
    maps = hull.hull_maps(silhouettes, RESOLUTION)
    timings["predict"] = time.perf_counter() - t0

    report("Fusing the views into a surface", 0.45)
    vertices, faces = fusion.fuse(maps, detail, timings)
    timings["refine"] = 0.0
    timings["total"] = time.perf_counter() - started
    report("Done", 1.0)
    return Result(vertices, faces, timings, backend, "cpu", silhouettes)

"""The reconstruction pipeline: sketches in, a watertight mesh out. Servers and the CLI call only this.

Stages (each timed): rasterize (strokes or PNG ink -> filled silhouettes), predict (the
backend's 14-view maps), fuse (oriented points, pruning, cleaning), poisson (surface),
refine (Fit to strokes, when asked for). ``progress(message, fraction)`` is called
between stages (and every few fitting iterations) and may raise to cancel the job.

``fit_strokes`` is Fit to strokes on its own: any mesh, in world space, against a sketch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from sketch2mesh_addon import protocol
from sketch2mesh_addon.protocol import ProtocolError

from model_server.geometry.normalize import fit_normalization
from model_server.sketch.rasterize import load_png_sketch as _load_png_sketch
from model_server.sketch.rasterize import rasterize_strokes, resample_ink
from model_server.sketch.silhouette import fill_silhouette
from model_server.geometry.views import INPUT_VIEWS, RESOLUTION

Progress = Callable[[str, float], None]
FitProgress = Callable[[str, float, "np.ndarray | None"], None]

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
    fit: dict | None = None         # Fit to strokes summary (iou_before/after, flipped_faces, ...) when refined


@dataclass
class Fitted:
    """A mesh fitted to a sketch: vertices in the caller's frame plus the fit's report."""

    vertices: np.ndarray            # (V, 3) float32
    summary: dict                   # iou_before, iou_after, flipped_faces, iterations, cancelled, ...
    log: list[dict[str, float]]     # per iteration: every loss term, its weight, the total


def load_png_sketch(path: str | Path) -> np.ndarray:
    """A PNG sketch as an ink image at the network resolution; ProtocolError('bad_input') if unusable."""
    return _load_png_sketch(path, RESOLUTION)


def reconstruct_images(inks: dict[str, np.ndarray], backend: str = "hull", detail: str = "medium",
                       device: str = "cpu", progress: Progress | None = None, refine: int = 0) -> Result:
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
    return _reconstruct(images, backend, detail, report, timings, started, refine, {}, device)


def reconstruct_strokes(strokes: dict[str, list[np.ndarray]], backend: str = "hull", detail: str = "medium",
                        device: str = "cpu", progress: Progress | None = None, refine: int = 0) -> Result:
    """Reconstruct from strokes: view -> list of (N, 3) (u, v, pressure) in world view-plane coordinates.

    The sketch is normalised into the canonical frame, reconstructed, and the mesh is
    mapped back so it overlays the strokes in world space."""
    started = time.perf_counter()
    _check_options(backend, detail)
    protocol.check_strokes(strokes)
    report = progress or (lambda message, fraction: None)
    report("Rasterising strokes", 0.0)
    t0 = time.perf_counter()
    frame, canonical, images = _sketch_images(strokes)
    timings = {"rasterize": time.perf_counter() - t0}
    result = _reconstruct(images, backend, detail, report, timings, started, refine, canonical, device)
    result.vertices = frame.to_world(result.vertices).astype(np.float32)
    result.timings["total"] = time.perf_counter() - started
    return result


def fit_strokes(vertices: np.ndarray, faces: np.ndarray, strokes: dict[str, list[np.ndarray]],
                iterations: int = 200, device: str = "cpu", progress: FitProgress | None = None) -> Fitted:
    """Fit to strokes for any mesh: world-space ``vertices`` (V, 3) and ``faces`` (F, 3)
    against world view-plane strokes (as ``reconstruct_strokes`` takes them).

    The sketch's normalisation maps both into the canonical frame, the mesh is fitted to
    the filled silhouettes and outline strokes there, and the result is mapped back.
    ``progress(message, fraction, vertices)`` receives the current world vertices every
    few iterations; raising ``fitting.FitCancelled`` from it stops with the best so far."""
    from model_server.fit import optimiser as fitting

    protocol.check_strokes(strokes)
    protocol.check_mesh(np.asarray(vertices, np.float32), np.asarray(faces, np.int64))
    frame, canonical, images = _sketch_images(strokes)
    silhouettes = _silhouettes(images)
    targets = _fit_targets(silhouettes, canonical)

    def report(message: str, fraction: float, current: np.ndarray | None) -> None:
        if progress is not None:
            progress(message, fraction, None if current is None else frame.to_world(current).astype(np.float32))

    fitted = fitting.fit_to_strokes(frame.to_canonical(vertices).astype(np.float32), np.asarray(faces, np.int64),
                                    targets, iterations=iterations, device=device, progress=report)
    return Fitted(frame.to_world(fitted.vertices).astype(np.float32), fit_summary(fitted), fitted.log)


def fit_summary(fitted) -> dict:
    """The JSON-ready report of a ``fitting.FitResult``."""
    return {"iou_before": fitted.iou_before, "iou_after": fitted.iou_after, "flipped_faces": fitted.flipped_faces,
            "iterations": fitted.iterations, "stopped_early": fitted.stopped_early, "cancelled": fitted.cancelled,
            "seconds": fitted.seconds, "weights": fitted.weights}


def _sketch_images(strokes: dict[str, list[np.ndarray]]):
    """The sketch's normalisation, its strokes in the canonical frame, and their ink images."""
    drawn = {view: [s for s in view_strokes if len(s)] for view, view_strokes in strokes.items()}
    drawn = {view: view_strokes for view, view_strokes in drawn.items() if view_strokes}
    frame = fit_normalization(drawn)
    canonical = {view: frame.strokes_to_canonical(view, view_strokes) for view, view_strokes in drawn.items()}
    images = {view: rasterize_strokes(view_strokes, res=RESOLUTION) for view, view_strokes in canonical.items()}
    return frame, canonical, images


def _silhouettes(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Filled silhouettes of the ink images; front and side must enclose area, an empty top is dropped."""
    silhouettes = {view: fill_silhouette(ink) for view, ink in images.items()}
    for view in protocol.REQUIRED_VIEWS:
        if not silhouettes[view].any():
            raise ProtocolError("bad_input", f"The {view} strokes enclose no area; draw the object's closed outline there.")
    if "top" in silhouettes and not silhouettes["top"].any():
        del silhouettes["top"]
    return silhouettes


def _fit_targets(silhouettes: dict[str, np.ndarray], strokes: dict[str, list[np.ndarray]]) -> dict:
    """Fit to strokes targets per view: the filled silhouette and its outline strokes
    (the silhouette's edge where only an image was given)."""
    from model_server.fit.optimiser import FitTarget, outline_points

    return {view: FitTarget(mask, outline_points(mask, strokes.get(view, []), INPUT_VIEWS[view]))
            for view, mask in silhouettes.items()}


def _check_options(backend: str, detail: str) -> None:
    if backend not in protocol.BACKENDS:
        raise ProtocolError("bad_request", f"backend must be one of {', '.join(protocol.BACKENDS)}, not {backend!r}")
    if detail not in protocol.DETAILS:
        raise ProtocolError("bad_request", f"detail must be one of {', '.join(protocol.DETAILS)}, not {detail!r}")
    if backend == "learned":
        raise ProtocolError("unavailable", LEARNED_UNAVAILABLE)


def _reconstruct(images: dict[str, np.ndarray], backend: str, detail: str, report: Progress,
                 timings: dict[str, float], started: float, refine: int,
                 strokes: dict[str, list[np.ndarray]], device: str) -> Result:
    from model_server.reconstruct import fusion
    from model_server.reconstruct.backends import hull

    t0 = time.perf_counter()
    silhouettes = _silhouettes(images)
    timings["rasterize"] += time.perf_counter() - t0

    report("Predicting the views (hull)", 0.15)
    t0 = time.perf_counter()
    maps = hull.hull_maps(silhouettes, RESOLUTION)
    timings["predict"] = time.perf_counter() - t0

    report("Fusing the views into a surface", 0.45)
    vertices, faces = fusion.fuse(maps, detail, timings)
    timings["refine"] = 0.0
    result = Result(vertices, faces, timings, backend, device, silhouettes)
    if refine:
        result = refine_result(result, refine, strokes, device,
                               lambda message, fraction: report(message, 0.8 + 0.2 * fraction))
    result.timings["total"] = time.perf_counter() - started
    report("Done", 1.0)
    return result


def refine_result(result: Result, iterations: int, strokes: dict[str, list[np.ndarray]] | None = None,
                  device: str = "cpu", progress: Progress | None = None) -> Result:
    """Fit to strokes on a reconstruction still in the canonical frame: a new Result with
    the fitted vertices, ``fit`` filled in and the ``refine`` time added.

    ``strokes`` are the canonical view-plane strokes, when the sketch came as strokes;
    without them the silhouettes' edges stand in for the outline."""
    from model_server.fit.optimiser import fit_to_strokes

    t0 = time.perf_counter()
    report = progress or (lambda message, fraction: None)
    report("Fitting to the strokes", 0.0)
    fitted = fit_to_strokes(result.vertices, result.faces, _fit_targets(result.silhouettes, strokes or {}),
                            iterations=iterations, device=device,
                            progress=lambda message, fraction, _: report(message, fraction))
    timings = dict(result.timings, refine=result.timings.get("refine", 0.0) + time.perf_counter() - t0)
    return Result(fitted.vertices, result.faces, timings, result.backend, result.device, result.silhouettes,
                  fit_summary(fitted))

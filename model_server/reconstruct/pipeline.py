"""The reconstruction pipeline: sketches in, a watertight mesh out. The server, the CLI and
the evaluation call only this.

Stages (each timed): rasterize (strokes or PNG ink -> filled silhouettes), predict (the
backend's 14-view maps), fuse (oriented points, pruning, cleaning), poisson (surface),
refine (Fit to strokes, when asked for). ``progress(message, fraction)`` is called
between stages (and every few fitting iterations) and may raise to cancel the job.

``fit_strokes`` is Fit to strokes on its own: any mesh, in world space, against a sketch.

Inputs are taken as the service edge has validated them (``protocol.check_strokes``,
``protocol.check_mesh``); what the sketch's geometry makes impossible (no area enclosed,
views sharing no volume, unknown options) raises :class:`model_server.errors.Refused`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from model_server.errors import BAD_INPUT, BAD_REQUEST, Refused
from model_server.fit.limits import check_iterations
from model_server.geometry.normalize import fit_normalization
from model_server.geometry.views import INPUT_VIEWS, RESOLUTION
from model_server.reconstruct import backends
from model_server.sketch.png import resample_ink
from model_server.sketch.rasterize import rasterize_strokes
from model_server.sketch.silhouette import fill_silhouette

Progress = Callable[[str, float], None]
FitProgress = Callable[[str, float, "np.ndarray | None"], None]

REQUIRED_VIEWS = ("front", "side")


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


def reconstruct_images(inks: dict[str, np.ndarray], backend: str = "hull", detail: str = "medium",
                       device: str = "cpu", progress: Progress | None = None, refine: int = 0,
                       weights: str | Path | None = None) -> Result:
    """Reconstruct from ink images on the [-1, 1] canvases of 'front', 'side' and optionally 'top'.

    The mesh is in that same frame (nothing is rescaled). ``weights`` is the learned
    backend's checkpoint (the shipped one when None)."""
    started = time.perf_counter()
    predictor = _prepare(backend, detail, refine, weights, device)
    unknown = set(inks) - set(INPUT_VIEWS)
    if unknown:
        raise Refused(BAD_INPUT, f"Unknown view(s) {', '.join(sorted(unknown))}; expected front, side and top.")
    for view in REQUIRED_VIEWS:
        if view not in inks:
            raise Refused(BAD_INPUT, f"The {view} sketch is missing; front and side are both required.")
    report = progress or (lambda message, fraction: None)
    report("Reading the sketch", 0.0)
    t0 = time.perf_counter()
    images = {view: resample_ink(ink, RESOLUTION) for view, ink in inks.items()}
    timings = {"rasterize": time.perf_counter() - t0}
    return _reconstruct(images, predictor, detail, report, timings, started, refine, {}, device)


def reconstruct_strokes(strokes: dict[str, list[np.ndarray]], backend: str = "hull", detail: str = "medium",
                        device: str = "cpu", progress: Progress | None = None, refine: int = 0,
                        weights: str | Path | None = None) -> Result:
    """Reconstruct from strokes: view -> list of (N, 3) (u, v, pressure) in world view-plane coordinates.

    The sketch is normalised into the canonical frame, reconstructed, and the mesh is
    mapped back so it overlays the strokes in world space."""
    started = time.perf_counter()
    predictor = _prepare(backend, detail, refine, weights, device)
    report = progress or (lambda message, fraction: None)
    report("Rasterising strokes", 0.0)
    t0 = time.perf_counter()
    frame, canonical, images = _sketch_images(strokes)
    timings = {"rasterize": time.perf_counter() - t0}
    result = _reconstruct(images, predictor, detail, report, timings, started, refine, canonical, device)
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
    few iterations; raising ``FitCancelled`` from it stops with the best so far."""
    from model_server.fit.optimiser import fit_to_strokes

    check_iterations(iterations, "iterations", minimum=1)
    frame, canonical, images = _sketch_images(strokes)
    silhouettes = _silhouettes(images)
    targets = _fit_targets(silhouettes, canonical)

    def report(message: str, fraction: float, current: np.ndarray | None) -> None:
        if progress is not None:
            progress(message, fraction, None if current is None else frame.to_world(current).astype(np.float32))

    fitted = fit_to_strokes(frame.to_canonical(vertices).astype(np.float32), np.asarray(faces, np.int64),
                            targets, iterations=iterations, device=device, progress=report)
    return Fitted(frame.to_world(fitted.vertices).astype(np.float32), fitted.summary(), fitted.log)


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
                  fitted.summary())


def _prepare(backend: str, detail: str, refine: int, weights: str | Path | None, device: str) -> backends.Backend:
    """Check the options before any work and load the backend."""
    from model_server.reconstruct.fusion import DETAILS

    if detail not in DETAILS:
        raise Refused(BAD_REQUEST, f"detail must be one of {', '.join(DETAILS)}, not {detail!r}")
    check_iterations(refine, "--refine")
    return backends.load(backend, weights, device)


def _sketch_images(strokes: dict[str, list[np.ndarray]]):
    """The sketch's normalisation, its strokes in the canonical frame, and their ink images."""
    drawn = {view: [s for s in view_strokes if len(s)] for view, view_strokes in strokes.items()}
    drawn = {view: view_strokes for view, view_strokes in drawn.items() if view_strokes}
    try:
        frame = fit_normalization(drawn)
    except ValueError:
        raise Refused(BAD_INPUT, "The sketch has no extent; draw the object's outline on the Front and Side layers.") from None
    canonical = {view: frame.strokes_to_canonical(view, view_strokes) for view, view_strokes in drawn.items()}
    images = {view: rasterize_strokes(view_strokes, res=RESOLUTION) for view, view_strokes in canonical.items()}
    return frame, canonical, images


def _silhouettes(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Filled silhouettes of the ink images; front and side must enclose area, an empty top is dropped."""
    silhouettes = {view: fill_silhouette(ink) for view, ink in images.items()}
    for view in REQUIRED_VIEWS:
        if view not in silhouettes or not silhouettes[view].any():
            raise Refused(BAD_INPUT, f"The {view} strokes enclose no area; draw the object's closed outline there.")
    if "top" in silhouettes and not silhouettes["top"].any():
        del silhouettes["top"]
    return silhouettes


def _fit_targets(silhouettes: dict[str, np.ndarray], strokes: dict[str, list[np.ndarray]]) -> dict:
    """Fit to strokes targets per view: the filled silhouette and its outline strokes
    (the silhouette's edge where only an image was given)."""
    from model_server.fit.optimiser import FitTarget, outline_points

    return {view: FitTarget(mask, outline_points(mask, strokes.get(view, []), INPUT_VIEWS[view]))
            for view, mask in silhouettes.items()}


def _reconstruct(images: dict[str, np.ndarray], predictor: backends.Backend, detail: str, report: Progress,
                 timings: dict[str, float], started: float, refine: int,
                 strokes: dict[str, list[np.ndarray]], device: str) -> Result:
    from model_server.reconstruct import fusion

    t0 = time.perf_counter()
    silhouettes = _silhouettes(images)
    timings["rasterize"] += time.perf_counter() - t0

    report(f"Predicting the views ({predictor.name})", 0.15)
    t0 = time.perf_counter()
    maps = predictor.predict(images, silhouettes, RESOLUTION)
    timings["predict"] = time.perf_counter() - t0

    report("Fusing the views into a surface", 0.45)
    vertices, faces = fusion.fuse(maps, detail, timings)
    timings["refine"] = 0.0
    result = Result(vertices, faces, timings, predictor.name, device, silhouettes)
    if refine:
        result = refine_result(result, refine, strokes, device,
                               lambda message, fraction: report(message, 0.8 + 0.2 * fraction))
    result.timings["total"] = time.perf_counter() - started
    report("Done", 1.0)
    return result

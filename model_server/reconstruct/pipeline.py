"""The reconstruction pipeline: sketches in, a watertight mesh out. The server, the CLI and
the evaluation call only this.

Stages (each timed): rasterize (strokes or PNG ink -> filled silhouettes), predict (the
backend's 14-view maps), fuse (oriented points, pruning, cleaning), poisson (surface),
refine (Fit to strokes, when asked for, or when a predicted surface's outline has drifted
from the sketch: see ``SILHOUETTE_KEEP``). ``progress(message, fraction)`` is called
between stages (and every few fitting iterations) and may raise to cancel the job.

``fit_strokes`` is Fit to strokes on its own: any mesh, in world space, against a sketch.

Reading the sketch: each view's silhouette is what its strokes enclose plus its lines as
thin parts (``sketch.silhouette``); front and side drawn at slightly different heights are
lined up (``sketch.align``); a sketch with only one of front and side is inflated from
its outline (``reconstruct.inflate``). What was done is told in ``Result.notes``.

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

from model_server import interrupt
from model_server.errors import BAD_INPUT, BAD_REQUEST, Refused
from model_server.fit.limits import check_iterations
from model_server.geometry.normalize import fit_normalization
from model_server.geometry.views import INPUT_VIEWS, RESOLUTION
from model_server.reconstruct import backends
from model_server.sketch.png import resample_ink
from model_server.sketch.align import align_side_to_front
from model_server.sketch.rasterize import rasterize_strokes
from model_server.sketch.silhouette import iou, read_silhouette

Progress = Callable[[str, float], None]
FitProgress = Callable[[str, float, "np.ndarray | None"], None]

MAIN_VIEWS = ("front", "side")   # at least one of these is drawn; both give the true shape
ONE_VIEW_NOTE = ("Only the {drawn} view is drawn, so the shape is inflated from its outline; "
                 "draw the {missing} view too for a truer shape.")
HULL_FALLBACK = "the visual hull's own surface (no Poisson surface came out closed)"
SILHOUETTE_KEEP = 0.97   # a predicted surface whose outline in a drawn view matches the sketch less than this...
SNAP_ITERATIONS = 30     # ... is pulled back onto the strokes by this many iterations of Fit to strokes
SNAPPED = "pulled back onto the drawn outlines (Fit to strokes, {iterations} iterations)"
TRUST_IOU = 0.90         # a predicted surface still further than this from a drawn outline, or
TRUST_THIN = 0.90        # covering less than this share of the thin parts drawn, gives way to the hull
HULL_INSTEAD = ("the visual hull's maps: the network's surface missed the drawn outline (IoU {iou:.2f}) "
                "or its thin parts ({thin:.0%} covered)")


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
    notes: list[str] = field(default_factory=list)   # sentences for the user: what was done to the sketch
    fusion: str = ""                # how the closed surface was made (which Poisson attempt, or a fallback)
    thin: dict[str, np.ndarray] = field(default_factory=dict)  # bool res x res: the thin parts of each silhouette


@dataclass
class Fitted:
    """A mesh fitted to a sketch: vertices in the caller's frame plus the fit's report."""

    vertices: np.ndarray            # (V, 3) float32
    summary: dict                   # iou_before, iou_after, flipped_faces, iterations, cancelled, ...
    log: list[dict[str, float]]     # per iteration: every loss term, its weight, the total


def reconstruct_images(inks: dict[str, np.ndarray], backend: str = backends.DEFAULT_BACKEND, detail: str = "medium",
                       device: str = "cpu", progress: Progress | None = None, refine: int = 0,
                       weights: str | Path | None = None) -> Result:
    """Reconstruct from ink images on the [-1, 1] canvases of 'front', 'side' and optionally 'top'.

    The mesh is in that same frame (nothing is rescaled). ``weights`` is the learned
    backend's checkpoint (the shipped one when None)."""
    started = time.perf_counter()
    load_backend = _prepare(backend, detail, refine, weights, device)
    unknown = set(inks) - set(INPUT_VIEWS)
    if unknown:
        raise Refused(BAD_INPUT, f"Unknown view(s) {', '.join(sorted(unknown))}; expected front, side and top.")
    if not any(view in inks for view in MAIN_VIEWS):
        raise Refused(BAD_INPUT, "There is no front or side sketch; give at least one of them.")
    report = progress or (lambda message, fraction: None)
    report("Reading the sketch", 0.0)
    t0 = time.perf_counter()
    images = {view: resample_ink(ink, RESOLUTION) for view, ink in inks.items()}
    timings = {"rasterize": time.perf_counter() - t0}
    return _reconstruct(images, load_backend, detail, report, timings, started, refine, {}, device)


def reconstruct_strokes(strokes: dict[str, list[np.ndarray]], backend: str = backends.DEFAULT_BACKEND, detail: str = "medium",
                        device: str = "cpu", progress: Progress | None = None, refine: int = 0,
                        weights: str | Path | None = None) -> Result:
    """Reconstruct from strokes: view -> list of (N, 3) (u, v, pressure) in world view-plane coordinates.

    The sketch is normalised into the canonical frame, reconstructed, and the mesh is
    mapped back so it overlays the strokes in world space."""
    started = time.perf_counter()
    load_backend = _prepare(backend, detail, refine, weights, device)
    report = progress or (lambda message, fraction: None)
    report("Rasterising strokes", 0.0)
    t0 = time.perf_counter()
    frame, canonical, images = _sketch_images(strokes)
    timings = {"rasterize": time.perf_counter() - t0}
    result = _reconstruct(images, load_backend, detail, report, timings, started, refine, canonical, device)
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
    sketch = read_sketch(images, canonical)
    targets = _fit_targets(sketch.silhouettes, sketch.thin, sketch.strokes)

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
    fitted = fit_to_strokes(result.vertices, result.faces,
                            _fit_targets(result.silhouettes, result.thin, strokes or {}),
                            iterations=iterations, device=device,
                            progress=lambda message, fraction, _: report(message, fraction))
    timings = dict(result.timings, refine=result.timings.get("refine", 0.0) + time.perf_counter() - t0)
    return Result(fitted.vertices, result.faces, timings, result.backend, result.device, result.silhouettes,
                  fitted.summary(), result.notes, result.fusion, result.thin)


def _prepare(backend: str, detail: str, refine: int, weights: str | Path | None,
             device: str) -> Callable[[], backends.Backend]:
    """Check the options before any work; the backend itself is loaded when a sketch with
    both front and side needs it (a one-view sketch is inflated, whatever the backend)."""
    from model_server.reconstruct.fusion import DETAILS

    if detail not in DETAILS:
        raise Refused(BAD_REQUEST, f"detail must be one of {', '.join(DETAILS)}, not {detail!r}")
    check_iterations(refine, "--refine")
    backends.check_name(backend)
    return lambda: backends.load(backend, weights, device)


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


@dataclass
class Sketch:
    """A sketch as read: per view its ink, silhouette, thin parts and canonical strokes
    (none for PNG input), after lining the side up with the front, and what was done."""

    images: dict[str, np.ndarray]
    silhouettes: dict[str, np.ndarray]
    thin: dict[str, np.ndarray]
    strokes: dict[str, list[np.ndarray]]
    notes: list[str]


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


def _fit_targets(silhouettes: dict[str, np.ndarray], thin: dict[str, np.ndarray],
                 strokes: dict[str, list[np.ndarray]]) -> dict:
    """Fit to strokes targets per view: the silhouette, its thin parts (which only the
    silhouette term shapes), and its outline strokes (the silhouette's edge where only
    an image was given)."""
    from model_server.fit.optimiser import FitTarget, outline_points

    targets = {}
    for view, mask in silhouettes.items():
        thin_part = thin.get(view, np.zeros_like(mask))
        outline = outline_points(mask, strokes.get(view, []), INPUT_VIEWS[view], exclude=thin_part)
        targets[view] = FitTarget(mask, outline, thin_part)
    return targets


def _reconstruct(images: dict[str, np.ndarray], load_backend: Callable[[], backends.Backend], detail: str,
                 report: Progress, timings: dict[str, float], started: float, refine: int,
                 strokes: dict[str, list[np.ndarray]], device: str) -> Result:
    from model_server.reconstruct import fusion

    t0 = time.perf_counter()
    sketch = read_sketch(images, strokes)
    timings["rasterize"] += time.perf_counter() - t0

    main = [view for view in MAIN_VIEWS if view in sketch.silhouettes]
    t0 = time.perf_counter()
    if len(main) == 1:
        from model_server.reconstruct.inflate import inflated_maps

        report("Inflating the outline", 0.15)
        backend = "inflate"
        maps = inflated_maps(main[0], sketch.silhouettes[main[0]], RESOLUTION)
        tolerance, votes, predicted = fusion.DEPTH_TOLERANCE_PX, 1, False
        missing = next(view for view in MAIN_VIEWS if view != main[0])
        sketch.notes.append(ONE_VIEW_NOTE.format(drawn=main[0], missing=missing))
    else:
        predictor = load_backend()
        report(f"Predicting the views ({predictor.name})", 0.15)
        backend = predictor.name
        maps = predictor.predict(sketch.images, sketch.silhouettes, RESOLUTION)
        tolerance, votes = predictor.depth_tolerance_px, predictor.prune_votes
        predicted = predictor.predicted
    timings["predict"] = time.perf_counter() - t0

    interrupt.checkpoint()
    report("Fusing the views into a surface", 0.45)
    steps: list[str] = []
    try:
        vertices, faces = fusion.fuse(maps, detail, timings, steps, tolerance, votes)
    except fusion.NotClosed:
        if len(main) == 1:
            raise
        vertices, faces = _hull_surface(sketch.silhouettes, detail, timings)
        steps.append(HULL_FALLBACK)
    timings["refine"] = 0.0
    result = Result(vertices, faces, timings, backend, device, sketch.silhouettes, None, sketch.notes, steps[-1],
                    sketch.thin)
    if not refine and predicted and outline_match(vertices, faces, sketch.silhouettes)[0] < SILHOUETTE_KEEP:
        snapped = refine_result(result, SNAP_ITERATIONS, sketch.strokes, device,
                                lambda message, fraction: report("Matching the drawn outlines", 0.8 + 0.2 * fraction))
        # The fit moves vertices freely: folds it leaves are relaxed away as fusion does its
        # own, and a surface that still crosses itself is not worth its better outline.
        snapped.vertices = fusion.untangle(snapped.vertices, snapped.faces).astype(np.float32)
        if len(fusion.crossing_triangles(snapped.vertices, snapped.faces)) == 0:
            snapped.fusion = f"{snapped.fusion}, {SNAPPED.format(iterations=SNAP_ITERATIONS)}"
            result = snapped
        else:
            result.timings = snapped.timings
    if predicted:
        match, thin_cover = outline_match(result.vertices, result.faces, sketch.silhouettes, sketch.thin)
        if match < TRUST_IOU or thin_cover < TRUST_THIN:
            hull_steps: list[str] = []
            maps = backends.load("hull").predict(sketch.images, sketch.silhouettes, RESOLUTION)
            try:
                vertices, faces = fusion.fuse(maps, detail, timings, hull_steps)
            except fusion.NotClosed:
                vertices, faces = _hull_surface(sketch.silhouettes, detail, timings)
            result = Result(vertices, faces, result.timings, "hull", device, sketch.silhouettes, None, sketch.notes,
                            HULL_INSTEAD.format(iou=match, thin=thin_cover), sketch.thin)
    if refine:
        result = refine_result(result, refine, sketch.strokes, device,
                               lambda message, fraction: report(message, 0.8 + 0.2 * fraction))
    result.timings["total"] = time.perf_counter() - started
    report("Done", 1.0)
    return result


def outline_match(vertices: np.ndarray, faces: np.ndarray, silhouettes: dict[str, np.ndarray],
                  thin: dict[str, np.ndarray] | None = None) -> tuple[float, float]:
    """How well the mesh shows the sketch, in the canonical frame at the silhouettes'
    resolution: the lowest silhouette IoU over the drawn views, and the lowest share of a
    view's thin parts that its silhouette (grown by a pixel) covers (1 without thin parts)."""
    from scipy import ndimage

    from model_server.geometry.raycast import render_silhouette

    ious, covered = [], [1.0]
    for view, mask in silhouettes.items():
        drawn = render_silhouette(vertices, faces, INPUT_VIEWS[view], mask.shape[0])
        ious.append(iou(drawn, mask))
        part = (thin or {}).get(view)
        if part is not None and part.any():
            covered.append(float((ndimage.binary_dilation(drawn) & part).sum() / part.sum()))
    return min(ious), min(covered)


def _hull_surface(silhouettes: dict[str, np.ndarray], detail: str, timings: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The last resort when no Poisson surface is closed: the visual hull's own closed
    surface (surface nets on its field), decimated and cleaned like a fused mesh."""
    from model_server.reconstruct import fusion
    from model_server.reconstruct.backends.hull import HullField, hull_mesh

    t0 = time.perf_counter()
    vertices, faces = fusion.close_mesh(*hull_mesh(HullField(silhouettes)), detail)
    timings["fuse"] = timings.get("fuse", 0.0) + time.perf_counter() - t0
    return vertices, faces

"""The reconstruction pipeline: sketches in, a watertight mesh out. The server, the CLI and
the evaluation call only this.

A reconstruction runs ``STAGES`` in order, each on one job (the sketch, the maps, the
current :class:`Result`):

  rasterize (read the sketch: ink -> silhouettes, ``sketch.read``) -> predict (the backend's
  14-view maps; one view alone is inflated) -> fuse (maps -> closed surface, ``fusion``; the
  hull's own surface when no Poisson surface closes) -> snap (a predicted surface whose
  outline has drifted from the sketch is pulled back onto it: see ``SILHOUETTE_KEEP``) ->
  trust (a predicted surface still far from the sketch gives way to the hull's) -> refine
  (Fit to strokes, when asked for).

One runner checks for cancel (``interrupt.checkpoint``) before each stage, calls
``progress(message, fraction)`` (which may raise ``interrupt.Interrupted`` to cancel the
job; the fitting stages also call it every few iterations, and a fit stops there with its
best shape so far) and times the stage into ``Result.timings`` under its
name; 'poisson' holds the Poisson solves and 'total' the whole job. A stage that does not
apply (snap and trust: predicted surfaces only; refine: when asked for) takes 0 s and
reports nothing.

``fit_strokes`` is Fit to strokes on its own: any mesh, in world space, against a sketch.
What both hand back is in ``reconstruct.result``; the fit inside a reconstruction
(snap, refine) in ``reconstruct.refine``.

Reading the sketch (``sketch.read``): each view's silhouette is what its strokes enclose
plus its lines as thin parts; front and side drawn at slightly different heights are
lined up; a sketch with only one of front and side is inflated from its outline
(``reconstruct.inflate``). What was done is told in ``Result.notes``.

Inputs are taken as the service edge has validated them (``protocol.check_strokes``,
``protocol.check_mesh``); what the sketch's geometry makes impossible (no area enclosed,
views sharing no volume, unknown options) raises :class:`model_server.errors.Refused`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from model_server import interrupt
from model_server.errors import BAD_INPUT, BAD_REQUEST, Refused
from model_server.fit.limits import check_iterations
from model_server.geometry.maps import Maps
from model_server.geometry.normalize import Normalization, fit_normalization
from model_server.geometry.views import INPUT_VIEWS, RESOLUTION
from model_server.reconstruct import backends
from model_server.reconstruct.refine import fit_targets, refine_result
from model_server.reconstruct.result import Fitted, Result
from model_server.sketch.png import resample_ink
from model_server.sketch.rasterize import rasterize_strokes
from model_server.sketch.read import MAIN_VIEWS, Sketch, read_sketch
from model_server.sketch.silhouette import iou

Progress = Callable[[str, float], None]
FitProgress = Callable[[str, float, "np.ndarray | None"], None]

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


def reconstruct_images(inks: dict[str, np.ndarray], backend: str = backends.DEFAULT_BACKEND, detail: str = "medium",
                       device: str = "cpu", progress: Progress | None = None, refine: int = 0,
                       weights: str | Path | None = None, roundness: float = backends.DEFAULT_ROUNDNESS) -> Result:
    """Reconstruct from ink images on the [-1, 1] canvases of 'front', 'side' and optionally 'top'.

    The mesh is in that same frame (nothing is rescaled). ``weights`` is the learned
    backend's checkpoint (the shipped one when None)."""
    started = time.perf_counter()
    load_backend = _prepare(backend, detail, refine, weights, device, roundness)
    unknown = set(inks) - set(INPUT_VIEWS)
    if unknown:
        raise Refused(BAD_INPUT, f"Unknown view(s) {', '.join(sorted(unknown))}; expected front, side and top.")
    if not any(view in inks for view in MAIN_VIEWS):
        raise Refused(BAD_INPUT, "There is no front or side sketch; give at least one of them.")
    job = _Job(read=lambda: read_sketch({view: resample_ink(ink, RESOLUTION) for view, ink in inks.items()}, {}),
               backend=backend, load_backend=load_backend, detail=detail, refine=refine, device=device)
    return _run(job, progress, started)


def reconstruct_strokes(strokes: dict[str, list[np.ndarray]], backend: str = backends.DEFAULT_BACKEND, detail: str = "medium",
                        device: str = "cpu", progress: Progress | None = None, refine: int = 0,
                        weights: str | Path | None = None, roundness: float = backends.DEFAULT_ROUNDNESS) -> Result:
    """Reconstruct from strokes: view -> list of (N, 3) (u, v, pressure) in world view-plane coordinates.

    The sketch is normalised into the canonical frame, reconstructed, and the mesh is
    mapped back so it overlays the strokes in world space."""
    started = time.perf_counter()
    load_backend = _prepare(backend, detail, refine, weights, device, roundness)
    frame, canonical = _canonical_strokes(strokes)
    job = _Job(read=lambda: read_sketch(_rasterized(canonical), canonical), backend=backend,
               load_backend=load_backend, detail=detail, refine=refine, device=device, to_world=frame.to_world)
    return _run(job, progress, started)


def fit_strokes(vertices: np.ndarray, faces: np.ndarray, strokes: dict[str, list[np.ndarray]],
                iterations: int = 200, device: str = "cpu", progress: FitProgress | None = None) -> Fitted:
    """Fit to strokes for any mesh: world-space ``vertices`` (V, 3) and ``faces`` (F, 3)
    against world view-plane strokes (as ``reconstruct_strokes`` takes them).

    The sketch's normalisation maps both into the canonical frame, the mesh is fitted to
    the filled silhouettes and outline strokes there, and the result is mapped back.
    ``progress(message, fraction, vertices)`` receives the current world vertices every
    few iterations; a cancel (``interrupt``) stops the fit with the best shape so far."""
    from model_server.fit.optimiser import fit_to_strokes

    check_iterations(iterations, "iterations", minimum=1)
    frame, canonical, images = _sketch_images(strokes)
    sketch = read_sketch(images, canonical)
    targets = fit_targets(sketch.silhouettes, sketch.thin, sketch.strokes)

    def report(message: str, fraction: float, current: np.ndarray | None) -> None:
        if progress is not None:
            progress(message, fraction, None if current is None else frame.to_world(current).astype(np.float32))

    fitted = fit_to_strokes(frame.to_canonical(vertices).astype(np.float32), np.asarray(faces, np.int64),
                            targets, iterations=iterations, device=device, progress=report)
    return Fitted(frame.to_world(fitted.vertices).astype(np.float32), fitted.summary(), fitted.log)


def _prepare(backend: str, detail: str, refine: int, weights: str | Path | None,
             device: str, roundness: float) -> Callable[[], backends.Backend]:
    """Check the options before any work; the backend itself is loaded when a sketch with
    both front and side needs it (a one-view sketch is inflated, whatever the backend)."""
    from model_server.reconstruct.fusion import DETAILS

    if detail not in DETAILS:
        raise Refused(BAD_REQUEST, f"detail must be one of {', '.join(DETAILS)}, not {detail!r}")
    check_iterations(refine, "--refine")
    backends.check_name(backend)
    backends.check_roundness(roundness)
    return lambda: backends.load(backend, weights, device, roundness)


def _canonical_strokes(strokes: dict[str, list[np.ndarray]]) -> tuple[Normalization, dict[str, list[np.ndarray]]]:
    """The sketch's normalisation and its drawn strokes in the canonical frame."""
    drawn = {view: [s for s in view_strokes if len(s)] for view, view_strokes in strokes.items()}
    drawn = {view: view_strokes for view, view_strokes in drawn.items() if view_strokes}
    try:
        frame = fit_normalization(drawn)
    except ValueError:
        raise Refused(BAD_INPUT, "The sketch has no extent; draw the object's outline on the Front and Side layers.") from None
    return frame, {view: frame.strokes_to_canonical(view, view_strokes) for view, view_strokes in drawn.items()}


def _rasterized(canonical: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """The ink image of each view's canonical strokes."""
    return {view: rasterize_strokes(view_strokes, res=RESOLUTION) for view, view_strokes in canonical.items()}


def _sketch_images(strokes: dict[str, list[np.ndarray]]):
    """The sketch's normalisation, its strokes in the canonical frame, and their ink images."""
    frame, canonical = _canonical_strokes(strokes)
    return frame, canonical, _rasterized(canonical)


def _silent(message: str, fraction: float) -> None:
    """Progress that goes nowhere."""


# --- The stages ---------------------------------------------------------------------------------

@dataclass
class _Job:
    """One reconstruction on its way through the stages: what was asked, and what the
    stages so far have made of it."""

    read: Callable[[], Sketch]                  # the first stage's work: the input, read as a sketch
    backend: str                                # the backend asked for; predict sets the one that ran
    load_backend: Callable[[], backends.Backend]
    detail: str
    refine: int
    device: str
    to_world: Callable[[np.ndarray], np.ndarray] | None = None   # canonical -> the caller's frame
    timings: dict[str, float] = field(default_factory=dict)
    sketch: Sketch | None = None
    maps: Maps | None = None
    depth_tolerance_px: float = 0.0             # how much fusion's pruning trusts the maps
    prune_votes: int = 1
    predicted: bool = False                     # the maps' outlines may drift from the sketch
    result: Result | None = None

    def surface(self, vertices: np.ndarray, faces: np.ndarray, backend: str, how: str) -> Result:
        """A Result for a new, unfitted surface of this job's sketch."""
        return Result(vertices=vertices, faces=faces, timings=self.timings, backend=backend, device=self.device,
                      silhouettes=self.sketch.silhouettes, notes=self.sketch.notes, fusion=how,
                      thin=self.sketch.thin)


@dataclass(frozen=True)
class Stage:
    """One step of a reconstruction: its timings key, what progress says when it starts and
    at which fraction of the job, its work, and when it applies.

    ``run(job, progress)`` updates the job; ``progress`` takes fractions of the stage itself.
    It returns the seconds it spent that are reported under keys of their own ('poisson')."""

    name: str
    message: str | Callable[[_Job], str]
    fraction: float
    run: Callable[[_Job, Progress], dict[str, float]]
    applies: Callable[[_Job], bool] = lambda job: True


def _read(job: _Job, progress: Progress) -> dict[str, float]:
    """The input read as a sketch: silhouettes, thin parts, the side lined up with the front."""
    job.sketch = job.read()
    return {}


def _predicting(job: _Job) -> str:
    """What the predict stage says it does."""
    return "Inflating the outline" if len(job.sketch.main_views) == 1 else f"Predicting the views ({job.backend})"


def _predict(job: _Job, progress: Progress) -> dict[str, float]:
    """The 14 views' maps: the backend's, or an inflated solid's when only one of front and side is drawn."""
    from model_server.reconstruct.fusion import DEPTH_TOLERANCE_PX

    sketch = job.sketch
    if len(sketch.main_views) == 1:
        from model_server.reconstruct.inflate import inflated_maps

        (drawn,) = sketch.main_views
        job.backend = "inflate"
        job.maps = inflated_maps(drawn, sketch.silhouettes[drawn], RESOLUTION)
        job.depth_tolerance_px, job.prune_votes, job.predicted = DEPTH_TOLERANCE_PX, 1, False
        missing = next(view for view in MAIN_VIEWS if view != drawn)
        sketch.notes.append(ONE_VIEW_NOTE.format(drawn=drawn, missing=missing))
        return {}
    predictor = job.load_backend()
    job.backend = predictor.name
    job.maps = predictor.predict(sketch.images, sketch.silhouettes, RESOLUTION)
    job.depth_tolerance_px, job.prune_votes = predictor.depth_tolerance_px, predictor.prune_votes
    job.predicted = predictor.predicted
    return {}


def _fuse(job: _Job, progress: Progress) -> dict[str, float]:
    """The maps' closed surface; the hull's own surface when no Poisson surface closes (two views only)."""
    from model_server.reconstruct import fusion

    try:
        fused = fusion.fuse(job.maps, job.detail, job.depth_tolerance_px, job.prune_votes)
    except fusion.NotClosed:
        if job.backend == "inflate":
            raise
        job.result = job.surface(*_hull_surface(job.sketch.silhouettes, job.detail), job.backend, HULL_FALLBACK)
        return {"poisson": 0.0}
    job.result = job.surface(fused.vertices, fused.faces, job.backend, fused.step)
    return {"poisson": fused.poisson_s}


def _snap(job: _Job, progress: Progress) -> dict[str, float]:
    """A predicted surface whose outline drifted from the sketch, pulled back onto the strokes."""
    from model_server.reconstruct import fusion

    result, sketch = job.result, job.sketch
    if outline_match(result.vertices, result.faces, sketch.silhouettes)[0] >= SILHOUETTE_KEEP:
        return {}
    snapped = refine_result(result, SNAP_ITERATIONS, sketch.strokes, job.device,
                            lambda message, fraction: progress("Matching the drawn outlines", fraction))
    # The fit moves vertices freely: folds it leaves are relaxed away as fusion does its
    # own, and a surface that still crosses itself is not worth its better outline.
    vertices = fusion.untangle(snapped.vertices, snapped.faces).astype(np.float32)
    if len(fusion.crossing_triangles(vertices, snapped.faces)) == 0:
        job.result = replace(snapped, vertices=vertices,
                             fusion=f"{snapped.fusion}, {SNAPPED.format(iterations=SNAP_ITERATIONS)}")
    return {}


def _trust(job: _Job, progress: Progress) -> dict[str, float]:
    """A predicted surface still far from the drawn outlines or thin parts gives way to the hull's."""
    from model_server.reconstruct import fusion

    result, sketch = job.result, job.sketch
    match, thin_cover = outline_match(result.vertices, result.faces, sketch.silhouettes, sketch.thin)
    if match >= TRUST_IOU and thin_cover >= TRUST_THIN:
        return {}
    how = HULL_INSTEAD.format(iou=match, thin=thin_cover)
    maps = backends.load("hull").predict(sketch.images, sketch.silhouettes, RESOLUTION)
    try:
        fused = fusion.fuse(maps, job.detail)
    except fusion.NotClosed:
        job.result = job.surface(*_hull_surface(sketch.silhouettes, job.detail), "hull", how)
        return {}
    job.result = job.surface(fused.vertices, fused.faces, "hull", how)
    return {"poisson": fused.poisson_s}


def _refine(job: _Job, progress: Progress) -> dict[str, float]:
    """Fit to strokes for the iterations asked for."""
    job.result = refine_result(job.result, job.refine, job.sketch.strokes, job.device, progress)
    return {}


STAGES: tuple[Stage, ...] = (
    Stage("rasterize", "Reading the sketch", 0.0, _read),
    Stage("predict", _predicting, 0.15, _predict),
    Stage("fuse", "Fusing the views into a surface", 0.45, _fuse),
    Stage("snap", "Matching the drawn outlines", 0.7, _snap, applies=lambda job: job.predicted and not job.refine),
    Stage("trust", "Checking the surface against the sketch", 0.8, _trust, applies=lambda job: job.predicted),
    Stage("refine", "Fitting to the strokes", 0.8, _refine, applies=lambda job: job.refine > 0),
)


def _run(job: _Job, progress: Progress | None, started: float) -> Result:
    """Run STAGES on ``job``: before each a cancel check and a progress report, and its
    time into the timings; then the Result, in the caller's frame."""
    report = progress or _silent
    for index, stage in enumerate(STAGES):
        interrupt.checkpoint()
        if not stage.applies(job):
            job.timings[stage.name] = 0.0
            continue
        end = STAGES[index + 1].fraction if index + 1 < len(STAGES) else 1.0
        report(stage.message if isinstance(stage.message, str) else stage.message(job), stage.fraction)
        t0 = time.perf_counter()
        parts = stage.run(job, _within(report, stage.fraction, end))
        job.timings[stage.name] = time.perf_counter() - t0 - sum(parts.values())
        for key, seconds in parts.items():
            job.timings[key] = job.timings.get(key, 0.0) + seconds
    interrupt.checkpoint()
    result = job.result
    if job.to_world is not None:
        result = replace(result, vertices=job.to_world(result.vertices).astype(np.float32))
    result = replace(result, timings=dict(job.timings, total=time.perf_counter() - started))
    report("Done", 1.0)
    return result


def _within(report: Progress, start: float, end: float) -> Progress:
    """``report`` for a stage that spans [start, end] of the job: it takes the stage's own fractions."""
    return lambda message, fraction: report(message, start + (end - start) * fraction)


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


def _hull_surface(silhouettes: dict[str, np.ndarray], detail: str) -> tuple[np.ndarray, np.ndarray]:
    """The last resort when no Poisson surface is closed: the visual hull's own closed
    surface (surface nets on its field), decimated and cleaned like a fused mesh."""
    from model_server.reconstruct import fusion
    from model_server.reconstruct.backends.hull import HullField, hull_mesh

    return fusion.close_mesh(*hull_mesh(HullField(silhouettes)), detail)

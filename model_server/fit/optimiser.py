"""Fit to strokes: move a mesh's vertices until its silhouettes match the sketch.

The optimisation follows Nicolet et al. 2021 (*Large Steps in Inverse Rendering*): the
variable is ``u = (I + lam L) x`` with ``L`` the uniform graph Laplacian, and positions are
recovered by solving that sparse symmetric system (a sparse LU factorised once on the CPU,
conjugate gradients on a GPU). Gradients reaching ``u`` are therefore smoothed over the
surface, and the step uses one Adam scale for all coordinates (the paper's AdamUniform),
which keeps the mesh clean and flip-free without a heavy smoothness term.

Per sketched view the loss has two data terms:

- silhouette: 1 - soft IoU of the differentiable rendered silhouette against the filled
  stroke silhouette (area agreement; robust, but its gradient lives only on a thin band);
- contour: a bidirectional 2D chamfer (Guillard et al., ICCV 2021), in pixels, between the
  points sampled along the mesh's rim edges (edges between a front- and a back-facing
  face) that lie on the outer edge of the current rendering, and the outline stroke points.
  Rim points are exact geometry, so the distance is sub-pixel and differentiable in the
  vertex positions directly, with a long reach that the pixel loss lacks.

A drawn outline is only so precise: a true shape's silhouette matches its own line
drawing to about 0.97 IoU, and chasing the last pixels moves a good surface away from the
shape in 3D. So a mesh whose silhouette already matches every sketched view to
``MATCHED_IOU`` is left as it is (the result says so: no iterations, ``already_matched``).

Two regularisers keep the rest of the shape: an anchor pulling each vertex toward its start
(stronger along any direction no sketched view sees, i.e. unconstrained depth, and much
stronger for vertices that lie far from every outline, the drawn one's and the mesh's own,
in every sketched view: an outline is fixed by moving the rim, not the whole surface), and
a penalty on faces whose normal turns by more than 90 degrees. And when the mesh already
matches every view to ``NEAR_MATCH_IOU``, no vertex moves farther than the drawn outline
is off the mesh's own where it projects (plus ``MOVE_SLACK_PX``): fixing a one-pixel
outline must not carry the whole surface a pixel outwards, however the smoothing spreads
the step. (A mesh far from its drawing, a ball fitted to a box, must change shape, and the
nearest outline is no measure of how far its vertices have to go.) Only outline strokes
count: points farther than a couple of pixels from the filled silhouette's edge (creases,
suggestive contours) are dropped, so interior strokes can never drag the outline.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from model_server import interrupt
from model_server.fit.diffrender import render_silhouette
from model_server.fit.large_steps import UniformAdam, solve
from model_server.fit.problem import FitTarget, FitWeights, Problem, near_thin
from model_server.geometry.mesh import face_normals
from model_server.geometry.views import INPUT_VIEWS, View, pixel_to_plane, plane_to_pixel
from model_server.sketch.silhouette import iou, signed_distance

FitProgress = Callable[[str, float, "np.ndarray | None"], None]

LEARNING_RATE = 2e-2        # Adam step in u-space (world units; canvases span [-1, 1])
OUTLINE_TOLERANCE_PX = 2.0  # stroke points farther than this from the filled edge are interior
MATCHED_IOU = 0.98          # a view whose silhouette matches this well is as close as its drawing can tell
NEAR_MATCH_IOU = 0.9        # a mesh whose every sketched view matches this well is only nudged (its
                            # vertices move at most problem.MOVE_SLACK_PX farther than their outline is off)
EARLY_STOP_TOLERANCE = 2e-3   # stop once the best loss fell by less than this ...
EARLY_STOP_WINDOW = 20        # ... over this many iterations
PROGRESS_EVERY = 10

__all__ = ["FitResult", "FitTarget", "FitWeights", "fit_to_strokes", "flipped_faces", "outline_points",
           "overlay_png", "silhouette_iou"]


@dataclass
class FitResult:
    """A fitted mesh and how the fit went."""

    vertices: np.ndarray                      # (V, 3) float32, best total loss seen
    log: list[dict[str, float]]               # per iteration: every term, its weight, the total
    iou_before: dict[str, float]
    iou_after: dict[str, float]
    flipped_faces: int                        # normals turned by > 90 degrees vs the start
    stopped_early: bool
    cancelled: bool
    iterations: int
    seconds: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)
    already_matched: bool = False             # every view matched to MATCHED_IOU at the start: nothing moved

    def summary(self) -> dict:
        """The JSON-ready report of the fit (everything but the vertices and the log)."""
        return {"iou_before": self.iou_before, "iou_after": self.iou_after, "flipped_faces": self.flipped_faces,
                "iterations": self.iterations, "stopped_early": self.stopped_early, "cancelled": self.cancelled,
                "seconds": self.seconds, "weights": self.weights, "already_matched": self.already_matched}


def outline_points(mask: np.ndarray, strokes: list[np.ndarray], view: View,
                   spacing_px: float = 1.0, tolerance_px: float = OUTLINE_TOLERANCE_PX,
                   exclude: np.ndarray | None = None) -> np.ndarray:
    """Resampled stroke points lying on the silhouette's edge, (N, 2) view-plane coords.

    Strokes are (N, 2+) polylines in view-plane coordinates (extra columns such as pressure
    are ignored). With no strokes at all, the pixel centres on the mask's edge are used.
    Points near ``exclude`` pixels (the thin parts) are left out."""
    res = mask.shape[0]
    pixel = view.pixel_size(res)
    points = [_resample(np.asarray(s, np.float64)[:, :2], spacing_px * pixel) for s in strokes if len(s)]
    points = np.concatenate(points) if points else _edge_pixels(mask, view)
    rows, cols = plane_to_pixel(points[:, 0], points[:, 1], view.extent, res)
    r = np.clip(np.rint(rows).astype(int), 0, res - 1)
    c = np.clip(np.rint(cols).astype(int), 0, res - 1)
    keep = np.abs(signed_distance(mask))[r, c] <= tolerance_px
    if exclude is not None and np.any(exclude):
        keep &= ~near_thin(exclude)[r, c]
    return points[keep].astype(np.float32)


def fit_to_strokes(vertices: np.ndarray, faces: np.ndarray, targets: dict[str, FitTarget],
                   iterations: int = 200, device: str = "cpu", progress: FitProgress | None = None,
                   weights: FitWeights | dict | None = None) -> FitResult:
    """Optimise vertex positions so the mesh's silhouettes match ``targets`` (view name -> target).

    ``progress(message, fraction, vertices)`` is called every few iterations with the current
    vertices. A cancel (``interrupt``: the job's cancel set, or ``interrupt.Interrupted``
    raised by ``progress``) stops the fit with the best result so far.

    On CPU the result is deterministic: the fit draws no random numbers and its CPU kernels
    are deterministic (``torch.use_deterministic_algorithms`` is not switched on: importing
    it costs seconds). It changes no process-wide torch state, so fits on two threads
    (an abandoned job's beside a new one) cannot disturb each other; torch's CPU threads
    are set once at start-up (``device.use_cpu_threads``)."""
    weights = weights if isinstance(weights, FitWeights) else FitWeights(**(weights or {}))
    views = {name: INPUT_VIEWS[name] for name in targets}
    start_time = time.perf_counter()
    before = {n: silhouette_iou(vertices, faces, t.mask, views[n]) for n, t in targets.items()}
    if all(iou >= MATCHED_IOU for iou in before.values()):
        return FitResult(vertices=np.asarray(vertices, np.float32).copy(), log=[], iou_before=before,
                         iou_after=dict(before), flipped_faces=0, stopped_early=True, cancelled=False, iterations=0,
                         seconds=time.perf_counter() - start_time, weights=asdict(weights), already_matched=True)
    nudge = all(iou >= NEAR_MATCH_IOU for iou in before.values())
    problem = Problem(vertices, faces, targets, views, weights, torch.device(device), nudge)
    best, log, stopped_early, cancelled = _optimise(problem, iterations, progress)
    fitted = best.astype(np.float32)
    return FitResult(
        vertices=fitted, log=log,
        iou_before=before,
        iou_after={n: silhouette_iou(fitted, faces, t.mask, views[n]) for n, t in targets.items()},
        flipped_faces=flipped_faces(vertices, fitted, faces),
        stopped_early=stopped_early, cancelled=cancelled, iterations=len(log),
        seconds=time.perf_counter() - start_time, weights=asdict(weights))


def silhouette_iou(vertices: np.ndarray, faces: np.ndarray, mask: np.ndarray, view: View) -> float:
    """IoU of the mesh's hard silhouette in ``view`` (this renderer's, thresholded at 0.5:
    exactly the pixel centres the mesh covers) against ``mask``."""
    with torch.no_grad():
        rendered = render_silhouette(torch.as_tensor(np.asarray(vertices, np.float32)), np.asarray(faces, np.int64),
                                     view, np.asarray(mask).shape[0])
    return iou(rendered.numpy() > 0.5, mask)


def flipped_faces(before: np.ndarray, after: np.ndarray, faces: np.ndarray) -> int:
    """How many faces' normals turned by more than 90 degrees from ``before`` to ``after``."""
    n0, n1 = (face_normals(v, faces) for v in (before, after))
    return int(((n0 * n1).sum(axis=1) < 0.0).sum())


def overlay_png(path, target_mask: np.ndarray, fitted_silhouette: np.ndarray, stroke_points: np.ndarray,
                extent: float = 1.0) -> None:
    """Debug image: target fill grey, fitted silhouette blue (overlap dark blue), strokes red."""
    from PIL import Image

    target, fitted = np.asarray(target_mask, bool), np.asarray(fitted_silhouette) > 0.5
    res = target.shape[0]
    image = np.full((res, res, 3), 255, np.uint8)
    image[target] = (200, 200, 200)
    image[fitted & ~target] = (120, 160, 255)
    image[fitted & target] = (60, 80, 180)
    points = np.asarray(stroke_points, np.float64).reshape(-1, 2)
    rows, cols = (np.rint(a).astype(int) for a in plane_to_pixel(points[:, 0], points[:, 1], extent, res))
    inside = (rows >= 0) & (rows < res) & (cols >= 0) & (cols < res)
    image[rows[inside], cols[inside]] = (230, 30, 30)
    Image.fromarray(image).save(path)



def _optimise(problem: Problem, iterations: int,
              progress: FitProgress | None) -> tuple[np.ndarray, list[dict[str, float]], bool, bool]:
    """Adam steps in u-space: the best vertices seen, the log, whether the loss stopped
    falling, and whether a cancel stopped the fit (``interrupt.requested()``, or
    ``interrupt.Interrupted`` raised by ``progress``)."""
    u = (problem.system @ problem.x0).clone().requires_grad_(True)
    optimiser = UniformAdam(u, LEARNING_RATE)
    best_loss, best_x, history = float("inf"), problem.x0.clone(), []
    log: list[dict[str, float]] = []
    stopped_early = cancelled = False
    for step in range(iterations):
        x = problem.within_reach(solve(u, problem.system))
        current = x.detach()
        total, terms = problem.loss(x)
        log.append({"iteration": step, "total": float(total.detach())}
                   | {k: float(v.detach()) for k, v in terms.items()}
                   | {f"{k}_weight": getattr(problem.weights, k) for k in terms})
        value = log[-1]["total"]
        if value < best_loss:
            best_loss, best_x = value, current.clone()
        history.append(best_loss)
        if len(history) > EARLY_STOP_WINDOW and history[-EARLY_STOP_WINDOW - 1] - best_loss < EARLY_STOP_TOLERANCE:
            stopped_early = True
            break
        u.grad = None
        total.backward()
        optimiser.step()
        if interrupt.requested():
            cancelled = True
            break
        if progress is not None and (step + 1) % PROGRESS_EVERY == 0:
            try:
                progress(f"Fitting: iteration {step + 1}/{iterations}, loss {best_loss:.4f}",
                         (step + 1) / iterations, current.cpu().numpy())
            except interrupt.Interrupted:
                cancelled = True
                break
    return best_x.cpu().numpy(), log, stopped_early, cancelled


def _resample(polyline: np.ndarray, spacing: float) -> np.ndarray:
    """Points every ``spacing`` along a polyline (its vertices' order), ends included."""
    if len(polyline) < 2:
        return polyline
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(polyline, axis=0), axis=1))])
    samples = np.linspace(0.0, arc[-1], max(2, int(np.ceil(arc[-1] / spacing)) + 1))
    return np.stack([np.interp(samples, arc, polyline[:, k]) for k in range(2)], 1)


def _edge_pixels(mask: np.ndarray, view: View) -> np.ndarray:
    """Plane coordinates of the mask's edge: the midpoints between every inside pixel and
    each of its outside 4-neighbours (the canvas border counts as outside)."""
    padded = np.pad(np.asarray(mask, bool), 1)
    inside = padded[1:-1, 1:-1]
    points = []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        outside = ~padded[1 + dr:padded.shape[0] - 1 + dr, 1 + dc:padded.shape[1] - 1 + dc]
        rows, cols = np.nonzero(inside & outside)
        points.append(np.stack([rows + 0.5 * dr, cols + 0.5 * dc], 1))
    rows, cols = np.concatenate(points).T
    return np.stack(pixel_to_plane(rows, cols, view.extent, mask.shape[0]), 1).astype(np.float32)


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

import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

from model_server import interrupt
from model_server.fit.diffrender import DEFAULT_SIGMA, k_nearest, mesh_edges, render_silhouette
from model_server.fit.large_steps import SmoothingSystem, UniformAdam, solve
from model_server.geometry.mesh import edge_faces as edge_faces_of
from model_server.geometry.mesh import face_normals
from model_server.geometry.views import INPUT_VIEWS, View, pixel_to_plane, plane_to_pixel
from model_server.sketch.silhouette import iou, signed_distance

FitProgress = Callable[[str, float, "np.ndarray | None"], None]

SMOOTHING = 10.0            # lam in u = (I + lam L) x
LEARNING_RATE = 2e-2        # Adam step in u-space (world units; canvases span [-1, 1])
OUTLINE_TOLERANCE_PX = 2.0  # stroke points farther than this from the filled edge are interior
RIM_SAMPLES_PER_EDGE = 4    # points per rim edge in the contour chamfer (edge ends included once)
RIM_TOLERANCE_PX = 2.0      # rim points farther than this from the rendered edge are interior folds
MATCHED_IOU = 0.98          # a view whose silhouette matches this well is as close as its drawing can tell
RIM_REACH_PX = 6.0          # vertices this close to an outline (drawn or the mesh's) in some view move freely ...
FAR_ANCHOR_FACTOR = 50.0    # ... the others' anchor is this much stiffer
NEAR_MATCH_IOU = 0.9        # a mesh whose every sketched view matches this well is only nudged: ...
MOVE_SLACK_PX = 0.0         # ... a vertex moves at most this much farther than its outline is off
                            # (_anchors_and_reach); on the cow after the learned backend, 200
                            # iterations: slack 1.5 px -> Chamfer x1.12, 0.5 -> x1.07, 0 -> x1.05
EARLY_STOP_TOLERANCE = 2e-3   # stop once the best loss fell by less than this ...
EARLY_STOP_WINDOW = 20        # ... over this many iterations
PROGRESS_EVERY = 10


class FitCancelled(Exception):
    """Raised by a progress callback to stop the fit; the best result so far is returned."""


@dataclass
class FitTarget:
    """What one sketched view asks for, in the canonical frame.

    mask: silhouette, bool (res, res), row 0 = top (pipeline.Result.silhouettes).
    outline: (N, 2) view-plane points on the outer strokes (see ``outline_points``).
    thin: bool (res, res), the silhouette's thin parts (lines that enclose nothing). Only
    the silhouette term shapes them: a thin part's own stroke runs down its middle, and
    pulling its rims onto that line, or onto the body's outline, would erase it."""

    mask: np.ndarray
    outline: np.ndarray
    thin: np.ndarray | None = None


@dataclass
class FitWeights:
    silhouette: float = 1.0
    contour: float = 0.2
    anchor: float = 0.05
    unseen_anchor_factor: float = 400.0   # the anchor is this much stiffer along unseen directions
    flip: float = 1.0


@dataclass
class FitResult:
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
        keep &= ~_near_thin(exclude)[r, c]
    return points[keep].astype(np.float32)


def fit_to_strokes(vertices: np.ndarray, faces: np.ndarray, targets: dict[str, FitTarget],
                   iterations: int = 200, device: str = "cpu", progress: FitProgress | None = None,
                   weights: FitWeights | dict | None = None) -> FitResult:
    """Optimise vertex positions so the mesh's silhouettes match ``targets`` (view name -> target).

    ``progress(message, fraction, vertices)`` is called every few iterations with the current
    vertices; it may raise ``FitCancelled`` to stop with the best result so far. On CPU the
    result is deterministic."""
    weights = weights if isinstance(weights, FitWeights) else FitWeights(**(weights or {}))
    views = {name: INPUT_VIEWS[name] for name in targets}
    start_time = time.perf_counter()
    before = {n: silhouette_iou(vertices, faces, t.mask, views[n]) for n, t in targets.items()}
    if all(iou >= MATCHED_IOU for iou in before.values()):
        return FitResult(vertices=np.asarray(vertices, np.float32).copy(), log=[], iou_before=before,
                         iou_after=dict(before), flipped_faces=0, stopped_early=True, cancelled=False, iterations=0,
                         seconds=time.perf_counter() - start_time, weights=asdict(weights), already_matched=True)
    with _deterministic(torch.device(device)):
        nudge = all(iou >= NEAR_MATCH_IOU for iou in before.values())
        problem = _Problem(vertices, faces, targets, views, weights, torch.device(device), nudge)
        best, log, stopped_early, cancelled = problem.optimise(iterations, progress)
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


class _Problem:
    """The fixed data of one fit (mesh topology, targets, solver) and its loss."""

    def __init__(self, vertices, faces, targets, views, weights, device, nudge: bool):
        self.device, self.weights, self.views = device, weights, views
        self.x0 = torch.as_tensor(np.asarray(vertices, np.float32), device=device)
        self.faces = torch.as_tensor(np.asarray(faces, np.int64), device=device)
        self.render_edges = mesh_edges(self.faces)
        edge_vertices, edge_faces = edge_faces_of(np.asarray(faces))
        self.edge_vertices = torch.as_tensor(edge_vertices, device=device)
        self.edge_faces = torch.as_tensor(edge_faces, device=device)
        self.system = SmoothingSystem(len(vertices), edge_vertices, SMOOTHING, device)
        self.masks = {n: torch.as_tensor(t.mask, dtype=torch.float32, device=device) for n, t in targets.items()}
        self.thin = {n: torch.as_tensor(_near_thin(t.thin), device=device) for n, t in targets.items()
                     if t.thin is not None and np.any(t.thin)}
        self.outlines = {n: self._to_pixels(torch.as_tensor(np.asarray(t.outline, np.float32).reshape(-1, 2),
                                                            device=device), views[n])
                         for n, t in targets.items()}
        self.outline_trees = {n: cKDTree(o.numpy()) for n, o in self.outlines.items()
                              if device.type == "cpu" and len(o)}
        self.n0 = _face_normals(self.x0, self.faces)
        self.anchor_metric = _anchor_metric(list(views.values()), weights, device)
        factor, reach = _anchors_and_reach(self.x0, self.faces, targets, views)
        self.anchor_factor = torch.as_tensor(factor, device=device)
        self.reach = torch.as_tensor(reach, device=device) if nudge else None

    def optimise(self, iterations: int, progress: FitProgress | None):
        u = (self.system @ self.x0).clone().requires_grad_(True)
        optimiser = UniformAdam(u, LEARNING_RATE)
        best_loss, best_x, history = float("inf"), self.x0.clone(), []
        log: list[dict[str, float]] = []
        stopped_early = cancelled = False
        for step in range(iterations):
            x = self.within_reach(solve(u, self.system))
            current = x.detach()
            total, terms = self.loss(x)
            log.append({"iteration": step, "total": float(total.detach())}
                       | {k: float(v.detach()) for k, v in terms.items()}
                       | {f"{k}_weight": getattr(self.weights, k) for k in terms})
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
                except FitCancelled:
                    cancelled = True
                    break
        return best_x.cpu().numpy(), log, stopped_early, cancelled

    def within_reach(self, x: torch.Tensor) -> torch.Tensor:
        """x with every vertex's displacement shortened to its reach (the scale is held
        constant for the gradient, so a capped vertex still feels the loss's pull); x itself
        when the mesh is far from its drawing and must change shape."""
        if self.reach is None:
            return x
        displacement = x - self.x0
        length = displacement.detach().norm(dim=1, keepdim=True)
        scale = (self.reach[:, None] / length.clamp_min(1e-12)).clamp(max=1.0)
        return self.x0 + displacement * scale

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        normals = _face_normals(x, self.faces)
        silhouette, contour = [], []
        for name, view in self.views.items():
            mask = self.masks[name]
            rendered = render_silhouette(x, self.faces, view, mask.shape[0], edges=self.render_edges)
            silhouette.append(1.0 - _soft_iou(rendered, mask))
            contour.append(self.contour(x, normals, rendered.detach(), name, view))
        displacement = x - self.x0
        terms = {
            "silhouette": torch.stack(silhouette).mean(),
            "contour": torch.stack(contour).mean(),
            "anchor": (((displacement @ self.anchor_metric) * displacement).sum(dim=1) * self.anchor_factor).mean(),
            "flip": torch.relu(-(normals * self.n0).sum(dim=1)).mean(),
        }
        total = sum(getattr(self.weights, k) * v for k, v in terms.items())
        return total, terms

    def contour(self, x, normals, rendered, name, view) -> torch.Tensor:
        """Bidirectional chamfer (pixels) between points on the outer rim edges and the outline."""
        outline = self.outlines[name]
        facing = (normals @ torch.as_tensor(view.direction, dtype=x.dtype, device=x.device)) > 0.0
        rim_edges = facing[self.edge_faces[:, 0]] != facing[self.edge_faces[:, 1]]
        if not bool(rim_edges.any()) or len(outline) == 0:
            return x.sum() * 0.0
        ends = x[self.edge_vertices[rim_edges]]                                # (R, 2, 3)
        steps = torch.arange(RIM_SAMPLES_PER_EDGE, dtype=x.dtype, device=x.device) / RIM_SAMPLES_PER_EDGE
        rim = ends[:, :1] + steps[None, :, None] * (ends[:, 1:] - ends[:, :1])
        pixels = self._to_pixels(_plane(rim.reshape(-1, 3), view), view)
        # Inside the renderer's band a pixel is sigmoid(d / sigma) of its signed distance d to
        # the outline, so the distance comes back for free; outside the band it is 0 or 1.
        edge_distance = DEFAULT_SIGMA * torch.logit(rendered.clamp(1e-7, 1 - 1e-7)).abs()
        res = rendered.shape[0]
        r = pixels[:, 0].detach().round().long().clamp(0, res - 1)
        c = pixels[:, 1].detach().round().long().clamp(0, res - 1)
        on_outline = edge_distance[r, c] <= RIM_TOLERANCE_PX
        if name in self.thin:
            on_outline &= ~self.thin[name][r, c]
        outer = pixels[on_outline]
        if len(outer) == 0:
            return x.sum() * 0.0
        with torch.no_grad():   # match without the graph, then differentiate the matched pairs only
            to_outline = k_nearest(outer, outline, tree=self.outline_trees.get(name))[:, 0]
            to_rim = k_nearest(outline, outer)[:, 0]
        rim_to_outline = _length(outer - outline[to_outline]).mean()
        outline_to_rim = _length(outer[to_rim] - outline).mean()
        return 0.5 * (rim_to_outline + outline_to_rim)

    def _to_pixels(self, plane: torch.Tensor, view: View) -> torch.Tensor:
        """(N, 2) view-plane (u, v) -> continuous (row, col) pixel coordinates."""
        res = next(iter(self.masks.values())).shape[0]
        return torch.stack(plane_to_pixel(plane[:, 0], plane[:, 1], view.extent, res), 1)


def _anchor_metric(views: list[View], weights: FitWeights, device) -> torch.Tensor:
    """3x3 quadratic form of the anchor: the identity, ``unseen_anchor_factor`` times stiffer
    along directions that lie in no sketched view's image plane (depth seen by no one)."""
    coverage = sum(np.eye(3) - np.outer(v.direction, v.direction) for v in views)
    eigenvalues, eigenvectors = np.linalg.eigh(coverage)
    unseen = eigenvectors[:, eigenvalues < 1e-6]
    metric = np.eye(3) + (weights.unseen_anchor_factor - 1.0) * unseen @ unseen.T
    return torch.as_tensor(metric, dtype=torch.float32, device=device)


def _anchors_and_reach(x0: torch.Tensor, faces: torch.Tensor, targets: dict[str, FitTarget],
                       views: dict[str, View]) -> tuple[np.ndarray, np.ndarray]:
    """Per vertex (V,) float32 each, from where it projects in the sketched views:

    - the anchor factor: 1 for vertices within RIM_REACH_PX of the drawn outline or of
      the mesh's own outline in some sketched view, or outside a drawn silhouette (the
      ones an outline is fixed with); FAR_ANCHOR_FACTOR for the rest;
    - the reach (world units): how far the drawn outline is off the mesh's own outline
      where the vertex projects (the difference of their signed distances there), in the
      view where that is most, plus MOVE_SLACK_PX."""
    x0 = x0.detach().cpu()
    near = np.zeros(len(x0), bool)
    reach = np.zeros(len(x0))
    for name, target in targets.items():
        view, mask = views[name], np.asarray(target.mask, bool)
        res = mask.shape[0]
        with torch.no_grad():
            own = render_silhouette(x0, faces.cpu().numpy(), view, res).numpy() > 0.5
        plane = _plane(x0, view).numpy()
        rows, cols = plane_to_pixel(plane[:, 0], plane[:, 1], view.extent, res)
        r = np.clip(np.rint(rows).astype(int), 0, res - 1)
        c = np.clip(np.rint(cols).astype(int), 0, res - 1)
        drawn = signed_distance(mask)[r, c]
        mine = signed_distance(own)[r, c]
        near |= (drawn > -RIM_REACH_PX) | (np.abs(mine) <= RIM_REACH_PX)
        reach = np.maximum(reach, (np.abs(drawn - mine) + MOVE_SLACK_PX) * view.pixel_size(res))
    return np.where(near, 1.0, FAR_ANCHOR_FACTOR).astype(np.float32), reach.astype(np.float32)


def _soft_iou(rendered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    intersection = (rendered * target).sum()
    return intersection / (rendered.sum() + target.sum() - intersection).clamp_min(1e-6)


def _length(vectors: torch.Tensor) -> torch.Tensor:
    """Row lengths with a finite gradient at zero."""
    return torch.sqrt((vectors * vectors).sum(dim=1) + 1e-12)


def _plane(points: torch.Tensor, view: View) -> torch.Tensor:
    axes = torch.as_tensor(np.stack([view.right, view.up], 1), dtype=points.dtype, device=points.device)
    return points @ axes


def _face_normals(x: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    a, b, c = x[faces[:, 0]], x[faces[:, 1]], x[faces[:, 2]]
    n = torch.linalg.cross(b - a, c - a)
    return n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _resample(polyline: np.ndarray, spacing: float) -> np.ndarray:
    """Points every ``spacing`` along a polyline (its vertices' order), ends included."""
    if len(polyline) < 2:
        return polyline
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(polyline, axis=0), axis=1))])
    samples = np.linspace(0.0, arc[-1], max(2, int(np.ceil(arc[-1] / spacing)) + 1))
    return np.stack([np.interp(samples, arc, polyline[:, k]) for k in range(2)], 1)


def _near_thin(thin: np.ndarray) -> np.ndarray:
    """The thin parts grown by the outline tolerance: where rims and strokes belong to them."""
    return ndimage.binary_dilation(np.asarray(thin, bool), iterations=int(np.ceil(RIM_TOLERANCE_PX)) + 1)


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


@contextlib.contextmanager
def _deterministic(device: torch.device):
    """Seeded torch for the duration of a fit, on one CPU thread: the fit's many small
    kernels run faster without thread hand-offs (measured: 133 vs 162 ms per iteration on
    a 24k-face mesh, 2 cores). Every CPU kernel used here is deterministic;
    ``torch.use_deterministic_algorithms`` is not switched on, as importing it costs seconds."""
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    torch.manual_seed(0)
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_rng_state(state)
        torch.set_num_threads(threads)

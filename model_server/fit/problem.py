"""One fit's problem: what the sketched views ask for (:class:`FitTarget`), how much each
term counts (:class:`FitWeights`), and :class:`Problem`, the fixed data of one fit (mesh
topology, targets, the smoothing system, each vertex's anchor and reach) with its loss.

The terms and why they are there are in :mod:`model_server.fit.optimiser`, which runs the
optimisation on a Problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

from model_server.fit.diffrender import DEFAULT_SIGMA, k_nearest, mesh_edges, render_silhouette
from model_server.fit.large_steps import SmoothingSystem
from model_server.geometry.mesh import edge_faces as edge_faces_of
from model_server.geometry.views import View, plane_to_pixel
from model_server.sketch.silhouette import signed_distance

SMOOTHING = 10.0            # lam in u = (I + lam L) x
RIM_SAMPLES_PER_EDGE = 4    # points per rim edge in the contour chamfer (edge ends included once)
RIM_TOLERANCE_PX = 2.0      # rim points farther than this from the rendered edge are interior folds
RIM_REACH_PX = 6.0          # vertices this close to an outline (drawn or the mesh's) in some view move freely ...
FAR_ANCHOR_FACTOR = 50.0    # ... the others' anchor is this much stiffer
MOVE_SLACK_PX = 0.0         # a nudged vertex moves at most this much farther than its outline is off
                            # (anchors_and_reach); on the cow after the learned backend, 200
                            # iterations: slack 1.5 px -> Chamfer x1.12, 0.5 -> x1.07, 0 -> x1.05


@dataclass
class FitTarget:
    """What one sketched view asks for, in the canonical frame.

    mask: silhouette, bool (res, res), row 0 = top (reconstruct.result.Result.silhouettes).
    outline: (N, 2) view-plane points on the outer strokes (see ``optimiser.outline_points``).
    thin: bool (res, res), the silhouette's thin parts (lines that enclose nothing). Only
    the silhouette term shapes them: a thin part's own stroke runs down its middle, and
    pulling its rims onto that line, or onto the body's outline, would erase it."""

    mask: np.ndarray
    outline: np.ndarray
    thin: np.ndarray | None = None


@dataclass
class FitWeights:
    """How much each term of the loss counts."""

    silhouette: float = 1.0
    contour: float = 0.2
    anchor: float = 0.05
    unseen_anchor_factor: float = 400.0   # the anchor is this much stiffer along unseen directions
    flip: float = 1.0


class Problem:
    """The fixed data of one fit (mesh topology, targets, solver) and its loss. With
    ``nudge`` every vertex's move is bounded by its reach (:func:`anchors_and_reach`)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, targets: dict[str, FitTarget],
                 views: dict[str, View], weights: FitWeights, device: torch.device, nudge: bool):
        self.device, self.weights, self.views = device, weights, views
        self.x0 = torch.as_tensor(np.asarray(vertices, np.float32), device=device)
        self.faces = torch.as_tensor(np.asarray(faces, np.int64), device=device)
        self.render_edges = mesh_edges(self.faces)
        edge_vertices, edge_faces = edge_faces_of(np.asarray(faces))
        self.edge_vertices = torch.as_tensor(edge_vertices, device=device)
        self.edge_faces = torch.as_tensor(edge_faces, device=device)
        self.system = SmoothingSystem(len(vertices), edge_vertices, SMOOTHING, device)
        self.masks = {n: torch.as_tensor(t.mask, dtype=torch.float32, device=device) for n, t in targets.items()}
        self.thin = {n: torch.as_tensor(near_thin(t.thin), device=device) for n, t in targets.items()
                     if t.thin is not None and np.any(t.thin)}
        self.outlines = {n: self._to_pixels(torch.as_tensor(np.asarray(t.outline, np.float32).reshape(-1, 2),
                                                            device=device), views[n])
                         for n, t in targets.items()}
        self.outline_trees = {n: cKDTree(o.numpy()) for n, o in self.outlines.items()
                              if device.type == "cpu" and len(o)}
        self.n0 = _face_normals(self.x0, self.faces)
        self.anchor_metric = anchor_metric(list(views.values()), weights, device)
        factor, reach = anchors_and_reach(self.x0, self.faces, targets, views)
        self.anchor_factor = torch.as_tensor(factor, device=device)
        self.reach = torch.as_tensor(reach, device=device) if nudge else None

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
        """The weighted total at vertex positions ``x``, and each term unweighted."""
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


def anchor_metric(views: list[View], weights: FitWeights, device) -> torch.Tensor:
    """3x3 quadratic form of the anchor: the identity, ``unseen_anchor_factor`` times stiffer
    along directions that lie in no sketched view's image plane (depth seen by no one)."""
    coverage = sum(np.eye(3) - np.outer(v.direction, v.direction) for v in views)
    eigenvalues, eigenvectors = np.linalg.eigh(coverage)
    unseen = eigenvectors[:, eigenvalues < 1e-6]
    metric = np.eye(3) + (weights.unseen_anchor_factor - 1.0) * unseen @ unseen.T
    return torch.as_tensor(metric, dtype=torch.float32, device=device)


def anchors_and_reach(x0: torch.Tensor, faces: torch.Tensor, targets: dict[str, FitTarget],
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


def near_thin(thin: np.ndarray) -> np.ndarray:
    """The thin parts grown by the outline tolerance: where rims and strokes belong to them."""
    return ndimage.binary_dilation(np.asarray(thin, bool), iterations=int(np.ceil(RIM_TOLERANCE_PX)) + 1)

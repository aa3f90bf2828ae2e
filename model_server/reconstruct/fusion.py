"""Fusion: the 14 views' maps -> one watertight, outward-oriented triangle mesh.

1. Back-project every foreground pixel into a world point with its normal (camera ->
   world frame); grazing pixels, whose depth is least reliable, are skipped.
2. Prune points another view contradicts (Lun et al. 2017): a point that projects
   outside another view's mask, or lies clearly in front of the surface that view sees,
   cannot be on the object.
3. Voxel-downsample to an even density, averaging positions and normals per voxel and
   facing direction. Thin parts (a lamp stem, chair legs: narrower than a voxel in some
   view's mask) are sampled on a finer grid.
4. Screened Poisson reconstruction (open3d), octree depth set by the detail level. Its
   octree only refines where samples are dense, so the finer samples of thin parts buy
   resolution there alone.
5. Trim by density: drop the weakly supported, extrapolated pieces. Poisson gives a
   closed surface; trimming single vertices would open holes in it, so the trim removes
   whole components only: weakly supported ones, specks and open pieces. Every other
   component is kept, so a part that Poisson separated from the rest is not lost.
6. Decimate to the detail's face budget (quadric error) and clean: no degenerate or
   duplicate faces or vertices, closed 2-manifold, consistently oriented, positive
   signed volume (outward normals). Marching cubes inside Poisson leaves sliver
   triangles that touch or cross; one Laplacian step plus local relaxation wherever an
   edge still pierces a triangle removes them, so the mesh is watertight in open3d's
   strict sense (no self-intersections). A result that is not closed makes fusion fail
   loudly rather than return it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import open3d as o3d
from scipy import ndimage

from model_server import interrupt
from model_server.errors import BAD_INPUT, Refused
from model_server.geometry.maps import Maps
from model_server.geometry.mesh import (adjacency, closed_and_oriented, half_edges, neighbour_mean, signed_volume,
                                         split_touching_sheets, unique_edges)
from model_server.geometry.views import VIEWS, View, normals_to_world, project, unproject
from model_server.reconstruct import poisson_solver
from model_server.sketch.silhouette import disk


class NotClosed(Refused):
    """Fusion could not make a closed surface (the pipeline may still fall back to another)."""


@dataclass(frozen=True)
class Detail:
    """Fusion settings for one detail level: point spacing, Poisson octree depth, face budget."""

    voxel_size: float
    poisson_depth: int
    max_faces: int


DETAILS: dict[str, Detail] = {
    "low": Detail(voxel_size=2.0 / 48, poisson_depth=7, max_faces=10_000),
    "medium": Detail(voxel_size=2.0 / 64, poisson_depth=7, max_faces=30_000),
    "high": Detail(voxel_size=2.0 / 112, poisson_depth=8, max_faces=120_000),
}
MIN_FACING = 0.1            # skip pixels whose normal is this close to grazing
MASK_TOLERANCE_PX = 1       # a point may fall this many pixels outside another mask
DEPTH_TOLERANCE_PX = 2.0    # ... and this far in front of another view's surface
MIN_POINTS = 200
_CELL_OFFSET = 1 << 12      # voxel indices are shifted positive and packed into one int64 key
_CELL_RANGE = 1 << 13
UNTANGLE_ROUNDS = 6
NOT_CLOSED = "The reconstructed surface is not closed; simplify the sketch and try again."
# Ways to get a closed surface out of Poisson, tried in order: (what, voxel grid shift in
# voxels, octree depth change). Marching cubes inside Poisson can leave a non-manifold edge
# where two sheets touch; a shifted sampling or another octree moves that contact away.
ATTEMPTS = (("Poisson", 0.0, 0), ("Poisson on a shifted voxel grid", 0.37, 0),
            ("Poisson one octree level finer", 0.0, 1), ("Poisson one octree level coarser", 0.0, -1))
LOW_DENSITY_COMPONENT = 0.5  # components whose median density is below this fraction of the mesh median go
MIN_COMPONENT_FRACTION = 0.02  # ... and so do those with fewer faces than this fraction of the largest
THIN_WIDTH_VOXELS = 1.0     # a mask part narrower than this many voxels is thin
THIN_REFINEMENT = 2         # thin parts are sampled this many times finer than the voxel size


def oriented_points(maps: Maps, views: tuple[View, ...] = VIEWS,
                    spacing: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World points (N, 3), unit world normals (N, 3) and source view index (N,) of every
    confident foreground pixel. Views whose pixels are much finer than ``spacing`` (the
    voxel size they will be averaged into) are read on a strided pixel grid."""
    fg = maps.foreground() & (maps.normal[..., 2] >= MIN_FACING)
    points, normals, source = [], [], []
    for i, view in enumerate(views):
        stride = max(1, int(spacing / (2.0 * view.pixel_size(maps.resolution))))
        sparse = np.zeros_like(fg[i])
        sparse[::stride, ::stride] = fg[i][::stride, ::stride]
        rows, cols = np.nonzero(sparse)
        points.append(unproject(view, rows, cols, maps.depth[i][rows, cols], maps.resolution))
        normals.append(normals_to_world(view, maps.normal[i][rows, cols].astype(np.float64)))
        source.append(np.full(len(rows), i))
    return np.concatenate(points), np.concatenate(normals), np.concatenate(source)


def consistent(points: np.ndarray, source: np.ndarray, maps: Maps, views: tuple[View, ...] = VIEWS,
               depth_tolerance_px: float = DEPTH_TOLERANCE_PX, votes: int = 1) -> np.ndarray:
    """Bool (N,): points fewer than ``votes`` other views contradict, by their mask or their
    depth (more than ``depth_tolerance_px`` in front of the surface they see).

    Every shipped backend renders its 14 maps from one solid, so the maps agree and one
    contradicting view is enough (``votes=1``, each backend's ``prune_votes``). A backend
    whose maps are predicted view by view disagrees by a few pixels along every outline;
    it sets ``prune_votes`` higher, so that a point is dropped only when that many views
    agree it is not on the object."""
    res = maps.resolution
    against = np.zeros(len(points), np.int32)
    size = 2 * MASK_TOLERANCE_PX + 1
    for j, view in enumerate(views):
        fg = maps.foreground()[j]
        mask = ndimage.maximum_filter(fg, size=size)
        nearest = ndimage.minimum_filter(np.where(fg, maps.depth[j], np.inf), size=size)
        others = np.flatnonzero(source != j)
        rows, cols, depth = project(view, points[others], res)
        r, c = np.rint(rows).astype(np.int64), np.rint(cols).astype(np.int64)
        inside = (r >= 0) & (r < res) & (c >= 0) & (c < res)
        r, c = np.clip(r, 0, res - 1), np.clip(c, 0, res - 1)
        seen = inside & mask[r, c]
        in_front = depth < nearest[r, c] - depth_tolerance_px * view.pixel_size(res)
        against[others[~seen | in_front]] += 1
    return against < votes


def thin_parts(points: np.ndarray, maps: Maps, width: float, views: tuple[View, ...] = VIEWS) -> np.ndarray:
    """Bool (N,): points that some view sees in a part of its mask narrower than ``width``
    (world units), such as a lamp stem or a chair leg.

    A mask pixel is in a narrow part when no disk of that width inside the mask covers
    it (it is not in the mask's morphological opening by the disk)."""
    res = maps.resolution
    fg = maps.foreground()
    thin = np.zeros(len(points), bool)
    for j, view in enumerate(views):
        radius = int(np.ceil(0.5 * width / view.pixel_size(res)))
        narrow = fg[j] & ~ndimage.binary_opening(fg[j], structure=disk(radius))
        if not narrow.any():
            continue
        narrow = ndimage.binary_dilation(narrow)   # surface points project onto the part's rim
        rows, cols, _ = project(view, points, res)
        r = np.clip(np.rint(rows).astype(np.int64), 0, res - 1)
        c = np.clip(np.rint(cols).astype(np.int64), 0, res - 1)
        thin |= narrow[r, c]
    return thin


def downsample(points: np.ndarray, normals: np.ndarray, voxel_size: float,
               thin: np.ndarray | None = None, offset: float = 0.0) -> o3d.geometry.PointCloud:
    """One averaged, re-normalised point per occupied voxel (and, for thin parts, facing direction).

    ``thin`` points use voxels THIN_REFINEMENT times smaller and are also grouped by the
    axis direction (+-x, +-y, +-z) nearest their normal: the two sides of a part thinner
    than a voxel face opposite ways, and averaging them together would cancel their
    normals and leave Poisson nothing to close around. Elsewhere one point per voxel is
    enough, and fewer points keep Poisson fast. The voxel grid is shifted by
    ``offset``: hull faces lie on pixel edges, and a face on a voxel boundary would be
    split into two offset layers of points, which makes Poisson surfaces bulge."""
    points = np.asarray(points, np.float64)
    normals = np.asarray(normals, np.float64)
    thin = np.zeros(len(points), bool) if thin is None else np.asarray(thin, bool)
    size = np.where(thin, voxel_size / THIN_REFINEMENT, voxel_size)
    cell = np.floor((points - offset) / size[:, None]).astype(np.int64) + _CELL_OFFSET
    axis = np.abs(normals).argmax(axis=1)
    facing = np.where(thin, 2 * axis + (normals[np.arange(len(normals)), axis] > 0), 0)
    key = ((cell[:, 0] * _CELL_RANGE + cell[:, 1]) * _CELL_RANGE + cell[:, 2]) * 12 + 2 * facing + thin
    _, group, count = np.unique(key, return_inverse=True, return_counts=True)
    group = group.ravel()
    mean_points = np.stack([np.bincount(group, points[:, k]) for k in range(3)], axis=1) / count[:, None]
    sum_normals = np.stack([np.bincount(group, normals[:, k]) for k in range(3)], axis=1)
    length = np.linalg.norm(sum_normals, axis=1, keepdims=True)
    oriented = length[:, 0] > 1e-6 * count   # normals that cancel out give Poisson no direction ("bad data")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(mean_points[oriented]))
    cloud.normals = o3d.utility.Vector3dVector(sum_normals[oriented] / length[oriented])
    return cloud


def poisson(cloud: o3d.geometry.PointCloud, depth: int) -> tuple[o3d.geometry.TriangleMesh, np.ndarray]:
    """Screened Poisson surface of an oriented cloud and each vertex's sample density
    (solved where :mod:`poisson_solver` says: in the server, a cancellable helper process)."""
    vertices, triangles, density = poisson_solver.solve(np.asarray(cloud.points), np.asarray(cloud.normals), depth)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(triangles))
    return mesh, density


def trim_and_clean(mesh: o3d.geometry.TriangleMesh, density: np.ndarray, max_faces: int,
                   relax: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The well-supported components, decimated, cleaned, closed and oriented outward.

    The main component is the largest well-supported one. Others stay too unless their
    median density is low (Poisson extrapolated them), they are specks (see
    MIN_COMPONENT_FRACTION) or open (cut by the Poisson octree's bounding box; sheets
    that merely touch do not make a component open). Keeping them matters where Poisson
    pinched a thin part off: the base under a lamp's stem is a component of its own and
    must not be dropped. The components of one Poisson surface do not cross, so the union
    of closed ones is still watertight.
    Where two sheets touch (an edge of four faces, a vertex of two fans: marching cubes
    leaves these where parts of the surface come within a cell of each other), each sheet
    gets its own copy of the shared vertices (:func:`split_touching_sheets`).
    Should decimation ever break the manifold, the undecimated mesh is used instead;
    slivers are then smoothed (``relax``: one Laplacian step, for marching-cubes output) and
    untangled (see :func:`untangle`)."""
    faces = np.asarray(mesh.triangles)
    labels, sizes = _components(mesh)
    if len(sizes) > 1:
        median = np.median(density)
        support = np.array([np.median(density[np.unique(faces[labels == k])]) for k in range(len(sizes))])
        supported = support >= LOW_DENSITY_COMPONENT * median
        main = int(np.argmax(np.where(supported, sizes, -1) if supported.any() else sizes))
        keep = supported & (sizes >= MIN_COMPONENT_FRACTION * sizes[main])
        vertices = np.asarray(mesh.vertices)
        keep = np.array([k == main or (keep[k] and _closed(vertices, faces[labels == k])) for k in range(len(sizes))])
        mesh.remove_triangles_by_mask(~keep[labels])
        mesh.remove_unreferenced_vertices()
    if not (mesh.is_edge_manifold(allow_boundary_edges=False) and mesh.is_vertex_manifold()):
        vertices, faces = split_touching_sheets(np.asarray(mesh.vertices), np.asarray(mesh.triangles))
        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                         o3d.utility.Vector3iVector(np.asarray(faces, np.int32)))
    for candidate in (_decimated(mesh, max_faces), mesh):
        interrupt.checkpoint()
        _tidy(candidate)
        if candidate.is_edge_manifold(allow_boundary_edges=False) and candidate.is_vertex_manifold() \
                and candidate.is_orientable():
            candidate.orient_triangles()
            faces = _without_pockets(np.asarray(candidate.triangles).astype(np.int64))
            vertices = np.asarray(candidate.vertices)
            used, faces = np.unique(faces, return_inverse=True)
            faces = faces.reshape(-1, 3)
            vertices = vertices[used]
            vertices = untangle(laplacian_step(vertices, faces) if relax else vertices, faces)
            if signed_volume(vertices, faces) < 0:
                faces = faces[:, ::-1]
            return vertices.astype(np.float32), np.ascontiguousarray(faces, np.int32)
    raise NotClosed(BAD_INPUT, NOT_CLOSED)


def _closed(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """Whether a component is closed, once any sheets of it that touch (along an edge of
    four faces, at a vertex of two fans) are split apart, as the whole mesh is afterwards."""
    return closed_and_oriented(faces) or closed_and_oriented(split_touching_sheets(vertices, faces)[1])


def laplacian_step(vertices: np.ndarray, faces: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """Move every vertex ``weight`` of the way to the mean of its neighbours (one step).

    One step rounds off marching-cubes slivers and breaks their exactly coplanar contacts
    while moving the surface by a small fraction of an edge length."""
    v = np.asarray(vertices, np.float64)
    return v + weight * (neighbour_mean(v, adjacency(faces)) - v)


def crossing_triangles(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Indices of self-intersecting triangles: those an edge of another triangle passes
    through, and the triangles owning such an edge.

    Two triangles intersect exactly when an edge of one crosses the other, so casting
    every edge as a ray segment finds them all in one open3d query (milliseconds, where
    a pairwise test takes seconds). Contacts with triangles sharing the edge's end
    vertices are ignored."""
    f = np.asarray(faces, np.int64)
    face_edges = np.sort(half_edges(f).reshape(-1, 3, 2), axis=2)  # (F, 3, 2)
    edges, _, _ = unique_edges(f)
    v = np.asarray(vertices, np.float32)
    rays = np.concatenate([v[edges[:, 0]], v[edges[:, 1]] - v[edges[:, 0]]], axis=1)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(np.ascontiguousarray(f, np.uint32)))
    hits = scene.list_intersections(o3d.core.Tensor(rays))
    ray = hits["ray_ids"].numpy().astype(np.int64)
    tri = hits["primitive_ids"].numpy().astype(np.int64)
    t = hits["t_hit"].numpy()
    ends = edges[ray]
    touches = (f[tri] == ends[:, :1]).any(axis=1) | (f[tri] == ends[:, 1:]).any(axis=1)
    crossing = (t > 1e-5) & (t < 1.0 - 1e-5) & ~touches
    base = len(v)
    piercing = np.isin(face_edges[..., 0] * base + face_edges[..., 1], ends[crossing, 0] * base + ends[crossing, 1])
    return np.union1d(tri[crossing], np.flatnonzero(piercing.any(axis=1)))


def untangle(vertices: np.ndarray, faces: np.ndarray, rounds: int = UNTANGLE_ROUNDS) -> np.ndarray:
    """Relax the neighbourhoods of self-intersecting triangles until none remain.

    Marching cubes inside Poisson leaves sub-voxel slivers and folds that touch; a few
    local Laplacian steps on just those vertices and their rings remove them without
    changing the shape elsewhere. Returns new vertices (topology is unchanged)."""
    v = np.asarray(vertices, np.float64).copy()
    f = np.asarray(faces, np.int64)
    pairs = adjacency(f)
    for _ in range(rounds):
        interrupt.checkpoint()
        bad = crossing_triangles(v, f)
        if len(bad) == 0:
            break
        region = np.zeros(len(v), bool)
        region[f[bad].ravel()] = True
        for _ in range(2):  # grow by two rings
            region[pairs[1][region[pairs[0]]]] = True
        for _ in range(3):
            v[region] += 0.5 * (neighbour_mean(v, pairs)[region] - v[region])
    return v


def _without_pockets(faces: np.ndarray) -> np.ndarray:
    """Faces without back-to-back pairs on the same three vertices: two-face 'pockets' that
    enclose nothing. They pass as closed, but a mesh consumer that drops duplicate faces
    (Blender's validate) is left with an open surface."""
    key = np.sort(faces, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    twice = counts[inverse.ravel()] > 1
    if not twice.any() or not closed_and_oriented(faces[~twice]):
        return faces
    return faces[~twice]


def _decimated(mesh: o3d.geometry.TriangleMesh, max_faces: int) -> o3d.geometry.TriangleMesh:
    target = min(max_faces, len(mesh.triangles) * 3 // 4)
    return mesh.simplify_quadric_decimation(target)


def _tidy(mesh: o3d.geometry.TriangleMesh) -> None:
    mesh.remove_degenerate_triangles()
    mesh.remove_duplicated_triangles()
    mesh.remove_duplicated_vertices()
    mesh.remove_unreferenced_vertices()


def _components(mesh: o3d.geometry.TriangleMesh) -> tuple[np.ndarray, np.ndarray]:
    labels, sizes, _ = mesh.cluster_connected_triangles()
    return np.asarray(labels), np.asarray(sizes)


@dataclass(frozen=True)
class Fused:
    """A fused surface, the way it was made and where its time went."""

    vertices: np.ndarray    # (V, 3) float32
    faces: np.ndarray       # (F, 3) int32, watertight and outward
    step: str               # the attempt that gave a closed surface (see ATTEMPTS)
    fuse_s: float           # seconds on points, pruning and cleaning
    poisson_s: float        # seconds in the Poisson solves


def fuse(maps: Maps, detail: str = "medium", depth_tolerance_px: float = DEPTH_TOLERANCE_PX,
         prune_votes: int = 1) -> Fused:
    """Maps of the 14 views -> a watertight, outward mesh, the attempt that closed it and its timings.

    ``depth_tolerance_px`` and ``prune_votes`` say how much the pruning trusts the views
    (see :func:`consistent`); each backend sets them, and the shipped ones prune on one
    contradicting view. Raises NotClosed when no attempt (see ATTEMPTS) gave a closed
    surface."""
    settings = DETAILS[detail]
    start = time.perf_counter()
    points, normals, source = oriented_points(maps, spacing=settings.voxel_size / THIN_REFINEMENT)
    keep = consistent(points, source, maps, depth_tolerance_px=depth_tolerance_px, votes=prune_votes)
    if keep.sum() < MIN_POINTS:
        raise Refused(BAD_INPUT, "The views do not agree on any shape; check that front and side show the same object.")
    points, normals = points[keep], normals[keep]
    thin = thin_parts(points, maps, THIN_WIDTH_VOXELS * settings.voxel_size)
    half_pixel = 0.5 * VIEWS[0].pixel_size(maps.resolution)
    fuse_s, poisson_s = time.perf_counter() - start, 0.0
    clouds: dict[float, o3d.geometry.PointCloud] = {}   # one per voxel grid shift; the octree attempts share it
    for what, shift, deeper in ATTEMPTS:
        interrupt.checkpoint()
        start = time.perf_counter()
        if shift not in clouds:
            clouds[shift] = downsample(points, normals, settings.voxel_size, thin,
                                       offset=half_pixel + shift * settings.voxel_size)
        cloud = clouds[shift]
        depth = settings.poisson_depth + deeper
        after_points = time.perf_counter()
        mesh, density = poisson(cloud, depth)
        interrupt.checkpoint()
        after_poisson = time.perf_counter()
        if len(mesh.triangles) == 0:
            raise Refused(BAD_INPUT, "No surface could be fitted to the sketch; draw closed outlines in front and side.")
        try:
            vertices, faces = trim_and_clean(mesh, density, settings.max_faces)
            closed = True
        except NotClosed:
            closed = False
        fuse_s += (after_points - start) + (time.perf_counter() - after_poisson)
        poisson_s += after_poisson - after_points
        if closed:
            return Fused(vertices, faces, f"{what} (octree depth {depth})", fuse_s, poisson_s)
    raise NotClosed(BAD_INPUT, NOT_CLOSED)


def close_mesh(vertices: np.ndarray, faces: np.ndarray, detail: str = "medium") -> tuple[np.ndarray, np.ndarray]:
    """A closed surface from another source (the hull's own mesh) through the same decimation
    and cleaning as a Poisson surface, without the Laplacian step (after decimation its
    long flat triangles would pull corners in); NotClosed if it cannot be made closed."""
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(vertices, np.float64)),
                                     o3d.utility.Vector3iVector(np.asarray(faces, np.int32)))
    return trim_and_clean(mesh, np.ones(len(vertices)), DETAILS[detail].max_faces, relax=False)

"""Generate the bundled example sketches (front, side and top line drawings).

Each example is a mesh put in the project frame (Z up, bounding box centred on
the origin, largest extent 1.7) and drawn orthographically in the three input
views of docs/INTERFACE.md.  The drawing is the silhouette outline plus the interior
lines where the depth jumps (one part of the object in front of another).

Per object this writes ``<out>/<name>/front.png``, ``side.png``, ``top.png``
(512x512 8-bit grey, dark lines on white, canvas spanning [-1, 1]) and
``strokes.json``: the same lines as polylines in world view-plane coordinates
(front (x, z), side (y, z), top (x, y)), so a Grease Pencil sketch can be built
from them.  Closed polylines repeat their first point at the end.

The PNGs are rasterised from the very polylines stored in ``strokes.json``, so
the two always agree.  Everything is deterministic.

Usage::

    python examples/make_examples.py [--meshes /work/shared/eval-meshes] [--out examples]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import open3d as o3d
from PIL import Image, ImageDraw

EVAL_MESHES = ("spot", "teapot", "stanford-bunny")
# Procedural examples, name -> (family, seed): a shape of a kind the learned backend was
# trained on, but not one of its training shapes, whose ground truth any checkout can
# make again (tests/model_server/reconstruct/test_learned.py scores against it).
PROCEDURAL = {"dog": ("quadruped", 2026)}
LARGEST_EXTENT = 1.7
RENDER_RES = 1024          # ray-cast resolution used to find the lines
IMAGE_RES = 512            # size of the written PNGs
SUPERSAMPLE = 4            # lines are drawn this much larger, then downsampled
LINE_WIDTH_PX = 2.5        # line width in output pixels
DEPTH_JUMP = 0.08          # world units between neighbouring pixels that count as an occlusion
OUTLINE_MARGIN_PX = 8      # occluding lines stop this many render pixels short of the outline
MIN_LOOP_AREA = 0.002      # silhouette loops enclosing less area (world units^2) are dropped
MIN_LINE_LENGTH = 0.12     # interior lines shorter than this (world units) are dropped
MAX_POINTS_PER_VIEW = 400


@dataclass(frozen=True)
class View:
    """An orthographic input view: looks along ``direction``; image axes ``right`` and ``up``."""

    name: str
    direction: tuple[float, float, float]
    right: tuple[float, float, float]
    up: tuple[float, float, float]


VIEWS = (
    View("front", (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    View("side", (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    View("top", (0.0, 0.0, -1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
)


# ----------------------------------------------------------------------------- meshes

def load_eval_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OBJ (Y up as distributed) and return (vertices, faces) rotated to Z up."""
    mesh = o3d.io.read_triangle_mesh(str(path))
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.triangles, dtype=np.int32)
    if len(faces) == 0:
        raise ValueError(f"{path} has no triangles")
    rotate_x_90 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    return vertices @ rotate_x_90.T, faces


def normalise(vertices: np.ndarray) -> np.ndarray:
    """Centre the bounding box on the origin and scale its largest extent to LARGEST_EXTENT."""
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    return (vertices - (low + high) / 2) * (LARGEST_EXTENT / (high - low).max())


def lathe(profile: np.ndarray, segments: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Revolve a (radius, z) polyline about the Z axis into a triangle mesh.

    Profile points with radius 0 become single pole vertices, so a profile that
    starts and ends on the axis gives a closed surface.
    """
    angles = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    rings: list[list[int]] = []
    vertices: list[np.ndarray] = []
    for radius, z in profile:
        if radius == 0.0:
            rings.append([len(vertices)] * segments)
            vertices.append(np.array([0.0, 0.0, z]))
        else:
            start = len(vertices)
            rings.append(list(range(start, start + segments)))
            vertices.extend(np.stack([radius * np.cos(angles), radius * np.sin(angles),
                                      np.full(segments, z)], axis=1))
    faces = []
    for lower, upper in zip(rings[:-1], rings[1:]):
        for k in range(segments):
            a, b = lower[k], lower[(k + 1) % segments]
            c, d = upper[k], upper[(k + 1) % segments]
            if a != b:
                faces.append((a, b, d))
            if c != d:
                faces.append((a, d, c))
    return np.array(vertices), np.array(faces, dtype=np.int32)


def tube_arc(centre: np.ndarray, major: float, minor: float, start: float, stop: float,
             segments: int = 48, sides: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Open tube along a circular arc in the XZ plane (angles in radians, 0 = +X)."""
    arc = np.linspace(start, stop, segments)
    around = np.linspace(0.0, 2 * np.pi, sides, endpoint=False)
    radial = np.stack([np.cos(arc), np.zeros_like(arc), np.sin(arc)], axis=1)
    ring_centres = centre + major * radial
    offsets = (minor * np.cos(around)[None, :, None] * radial[:, None, :]
               + minor * np.sin(around)[None, :, None] * np.array([0.0, 1.0, 0.0]))
    vertices = (ring_centres[:, None, :] + offsets).reshape(-1, 3)
    faces = []
    for i in range(segments - 1):
        for k in range(sides):
            a, b = i * sides + k, i * sides + (k + 1) % sides
            faces += [(a, b, b + sides), (a, b + sides, a + sides)]
    return vertices, np.array(faces, dtype=np.int32)


def make_mug() -> tuple[np.ndarray, np.ndarray]:
    """A mug: a hollow lathed cup with a handle on its +X side, Z up."""
    outer, inner, height, floor = 0.5, 0.43, 1.0, 0.08
    profile = np.array([
        (0.0, 0.0), (outer - 0.04, 0.0), (outer, 0.04), (outer, height),
        (inner, height), (inner, floor), (0.0, floor),
    ])
    cup_v, cup_f = lathe(profile)
    handle_v, handle_f = tube_arc(np.array([outer, 0.0, 0.52]), 0.27, 0.055,
                                  -np.pi / 2 - 0.1, np.pi / 2 + 0.1)
    vertices = np.concatenate([cup_v, handle_v])
    faces = np.concatenate([cup_f, handle_f + len(cup_v)])
    return vertices, faces


# ----------------------------------------------------------------------------- ray casting

def pixel_grid(res: int) -> tuple[np.ndarray, np.ndarray]:
    """View-plane (u, v) of pixel centres on the [-1, 1] canvas; row 0 is the top."""
    centres = (np.arange(res) + 0.5) * (2.0 / res) - 1.0
    return np.meshgrid(centres, -centres)


def render_depth(vertices: np.ndarray, faces: np.ndarray, view: View, res: int) -> np.ndarray:
    """Depth per pixel along the view direction from the plane through the origin; inf = empty."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)),
                        o3d.core.Tensor(faces.astype(np.uint32)))
    u, v = pixel_grid(res)
    direction, right, up = (np.array(a) for a in (view.direction, view.right, view.up))
    standoff = 3.0
    origins = u[..., None] * right + v[..., None] * up - standoff * direction
    rays = np.concatenate([origins, np.broadcast_to(direction, origins.shape)], axis=-1)
    hits = scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32).reshape(-1, 6)))
    t_hit = hits["t_hit"].numpy().reshape(res, res).astype(np.float64)
    return t_hit - standoff


# ----------------------------------------------------------------------------- line extraction

Corner = tuple[int, int]
Edge = tuple[Corner, Corner]


def shrink(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels of ``mask`` whose whole (2 radius + 1)-square neighbourhood is in the mask."""
    padded = np.pad(mask, radius, constant_values=False)
    rows, cols = mask.shape
    inside = np.ones_like(mask)
    for dr in range(2 * radius + 1):
        for dc in range(2 * radius + 1):
            inside &= padded[dr:dr + rows, dc:dc + cols]
    return inside


def crack_edges(depth: np.ndarray) -> tuple[list[Edge], list[Edge]]:
    """Directed unit edges between pixels where a line belongs: (silhouette, occluding).

    A silhouette edge separates a covered pixel from an empty 4-neighbour; an
    occluding edge separates two covered pixels, both a few pixels away from
    the outline, whose depths differ by more than DEPTH_JUMP.  Edges run
    between pixel corners (row, col) with the nearer pixel on their left, so
    silhouette edges chain into closed loops.
    """
    covered = np.isfinite(depth)
    inner = shrink(covered, OUTLINE_MARGIN_PX)
    near = np.where(covered, depth, np.inf)
    far = np.where(covered, depth, 0.0)
    silhouette: list[Edge] = []
    occluding: list[Edge] = []

    def add(a: tuple[slice, slice], b: tuple[slice, slice],
            segment: Callable[[int, int], Edge]) -> None:
        outline = covered[a] != covered[b]
        jump = inner[a] & inner[b] & (np.abs(far[a] - far[b]) > DEPTH_JUMP)
        for target, found in ((silhouette, outline), (occluding, jump)):
            for r, c in zip(*np.nonzero(found)):
                first, second = segment(int(r), int(c))
                target.append((first, second) if near[a][r, c] < near[b][r, c] else (second, first))

    # Pixel (r, c) and its right neighbour meet on the corner segment at column c + 1
    # (bottom to top keeps the left pixel on the left).
    add(np.s_[:, :-1], np.s_[:, 1:], lambda r, c: ((r + 1, c + 1), (r, c + 1)))
    # Pixel (r, c) and the one below meet on the corner segment at row r + 1
    # (west to east keeps the upper pixel on the left).
    add(np.s_[:-1, :], np.s_[1:, :], lambda r, c: ((r + 1, c), (r + 1, c + 1)))
    return sorted(silhouette), sorted(occluding)


def chain_edges(edges: list[Edge]) -> list[tuple[np.ndarray, bool]]:
    """Link directed unit edges into polylines of corners; returns (points, closed) pairs."""
    outgoing: dict[Corner, list[Corner]] = defaultdict(list)
    in_degree: dict[Corner, int] = defaultdict(int)
    for start, end in edges:
        outgoing[start].append(end)
        in_degree[end] += 1
    for ends in outgoing.values():
        ends.reverse()  # pop() then takes them in sorted order

    def walk(start: Corner) -> list[Corner]:
        path = [start]
        while outgoing.get(path[-1]):
            path.append(outgoing[path[-1]].pop())
        return path

    surplus = {c: len(outgoing[c]) - in_degree[c] for c in sorted(outgoing)}
    chains: list[tuple[np.ndarray, bool]] = []
    for start, count in surplus.items():
        for _ in range(count):
            if outgoing[start]:
                chains.append((np.array(walk(start), dtype=np.float64), False))
    for start in sorted(outgoing):
        while outgoing[start]:
            path = walk(start)
            chains.append((np.array(path, dtype=np.float64), path[0] == path[-1]))
    return chains


def corners_to_view_plane(corners: np.ndarray, res: int) -> np.ndarray:
    """(row, col) pixel corners to (u, v) on the [-1, 1] canvas."""
    return np.stack([corners[:, 1] * (2.0 / res) - 1.0, 1.0 - corners[:, 0] * (2.0 / res)], axis=1)


def smooth(points: np.ndarray, closed: bool, iterations: int = 6) -> np.ndarray:
    """Remove the pixel staircase with a few passes of neighbour averaging; open ends stay put."""
    body = points[:-1] if closed else points
    for _ in range(iterations):
        averaged = (np.roll(body, 1, axis=0) + 2 * body + np.roll(body, -1, axis=0)) / 4
        if not closed:
            averaged[0], averaged[-1] = body[0], body[-1]
        body = averaged
    return np.concatenate([body, body[:1]]) if closed else body


def simplify(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker: keep the points needed to stay within ``tolerance`` of the polyline."""
    keep = np.zeros(len(points), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        segment = points[last] - points[first]
        offsets = points[first + 1:last] - points[first]
        length = np.hypot(*segment)
        if length > 0:
            distance = np.abs(segment[0] * offsets[:, 1] - segment[1] * offsets[:, 0]) / length
        else:
            distance = np.hypot(offsets[:, 0], offsets[:, 1])
        worst = int(np.argmax(distance))
        if distance[worst] > tolerance:
            middle = first + 1 + worst
            keep[middle] = True
            stack += [(first, middle), (middle, last)]
    return points[keep]


def simplify_closed(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker for a closed loop, split at its point farthest from the start."""
    far = int(np.argmax(np.hypot(*(points - points[0]).T)))
    if far == 0:
        return points
    halves = simplify(points[:far + 1], tolerance), simplify(points[far:], tolerance)
    return np.concatenate([halves[0], halves[1][1:]])


def polygon_area(points: np.ndarray) -> float:
    """Absolute area enclosed by a closed polyline."""
    x, y = points[:, 0], points[:, 1]
    return abs(float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))) / 2


def polyline_length(points: np.ndarray) -> float:
    """Total length of a polyline."""
    return float(np.hypot(*np.diff(points, axis=0).T).sum())


def view_strokes(depth: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    """Smooth, filtered polylines (u, v) of a depth image's silhouette and occluding contours."""
    res = depth.shape[0]
    strokes = []
    silhouette, occluding = crack_edges(depth)
    for corners, closed in chain_edges(silhouette) + chain_edges(occluding):
        points = smooth(corners_to_view_plane(corners, res), closed)
        if closed and polygon_area(points) < MIN_LOOP_AREA:
            continue
        if not closed and polyline_length(points) < MIN_LINE_LENGTH:
            continue
        strokes.append((points, closed))
    strokes.sort(key=lambda stroke: -polyline_length(stroke[0]))
    return strokes


def simplify_strokes(strokes: list[tuple[np.ndarray, bool]]) -> list[np.ndarray]:
    """Simplify with the smallest tolerance that keeps the view under MAX_POINTS_PER_VIEW points."""
    tolerance = 0.001
    while True:
        simplified = [simplify_closed(p, tolerance) if closed else simplify(p, tolerance)
                      for p, closed in strokes]
        if sum(len(p) for p in simplified) <= MAX_POINTS_PER_VIEW:
            return simplified
        tolerance *= 1.25


# ----------------------------------------------------------------------------- output

def draw_png(strokes: list[np.ndarray], path: Path) -> None:
    """Rasterise polylines as dark anti-aliased lines on white, canvas [-1, 1], row 0 at the top."""
    size = IMAGE_RES * SUPERSAMPLE
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    width = round(LINE_WIDTH_PX * SUPERSAMPLE)
    for points in strokes:
        columns = (points[:, 0] + 1) / 2 * size
        rows = (1 - points[:, 1]) / 2 * size
        xy = list(zip(columns.tolist(), rows.tolist()))
        draw.line(xy, fill=20, width=width, joint="curve")
        for x, y in (xy[0], xy[-1]):
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=20)
    image.resize((IMAGE_RES, IMAGE_RES), Image.Resampling.BOX).save(path, optimize=True)


def make_procedural(family: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A procedural shape of the model server's training families (the repository's root
    must be importable: run this file from there)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from model_server.learning.data.shapes import make_shape

    return make_shape(family, np.random.default_rng(seed))


def write_example(name: str, vertices: np.ndarray, faces: np.ndarray, out: Path) -> None:
    """Render the three views of a normalised mesh and write its PNGs and strokes.json."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    all_strokes: dict[str, list[list[list[float]]]] = {}
    for view in VIEWS:
        depth = render_depth(vertices, faces, view, RENDER_RES)
        strokes = simplify_strokes(view_strokes(depth))
        draw_png(strokes, folder / f"{view.name}.png")
        all_strokes[view.name] = [np.round(p, 4).tolist() for p in strokes]
        print(f"{name}/{view.name}: {len(strokes)} strokes, {sum(len(p) for p in strokes)} points")
    (folder / "strokes.json").write_text(json.dumps(all_strokes, separators=(",", ":")) + "\n")


def main() -> None:
    """Regenerate every example from the evaluation meshes, the procedural mug and PROCEDURAL."""
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", type=Path, default=Path("/work/shared/eval-meshes"),
                        help="folder holding the evaluation OBJ files")
    parser.add_argument("--out", type=Path, default=here, help="folder to write the examples to")
    args = parser.parse_args()
    for name in EVAL_MESHES:
        vertices, faces = load_eval_mesh(args.meshes / f"{name}.obj")
        write_example(name, normalise(vertices), faces, args.out)
    vertices, faces = make_mug()
    write_example("mug", normalise(vertices), faces, args.out)
    for name, (family, seed) in PROCEDURAL.items():
        vertices, faces = make_procedural(family, seed)
        write_example(name, normalise(vertices), faces, args.out)


if __name__ == "__main__":
    main()

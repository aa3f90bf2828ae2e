"""Procedural shape families for training data: random chairs, tables, airplanes, animals,
people, lathe objects, mugs and cars, as closed triangle meshes.

Each family function describes one random shape as a ``Scene``: a list of signed
distance primitives (rounded boxes and slabs, capsules, cylinders, ellipsoids, tori,
convex prisms, revolved profiles) joined by smooth unions and cut by smooth
subtractions. The scene is sampled on a grid as a truncated distance field, each
primitive only inside its own bounding box, which keeps a shape to a few tens of
milliseconds; ``geometry.surface_nets`` turns the field into a closed mesh.

Design frame: Z up, the object's front faces -Y (the front view, looking along +Y,
sees it), lengths in any unit. ``make_shape`` adds a small random yaw and moves the
mesh into the canonical frame: centred, largest extent 1.7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from model_server.geometry.surface_nets import surface_nets
from model_server.geometry.normalize import canonical_vertices

MAX_FACES = 40_000   # a denser mesh is re-sampled on a coarser grid
MIN_PART = 0.01      # loose pieces with fewer vertices than this fraction are dropped
GRID_PAD = 2         # empty samples around the shape, so the border is outside
TINY = 1e-6

Array = np.ndarray
Sdf = Callable[[Array, Array, Array], Array]


# --------------------------------------------------------------------------- rotations

def rot_x(angle: float) -> Array:
    """Rotation about +X by ``angle`` radians (right-handed)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(angle: float) -> Array:
    """Rotation about +Y by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(angle: float) -> Array:
    """Rotation about +Z by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def axes(x: tuple[float, float, float], y: tuple[float, float, float]) -> Array:
    """The rotation whose local X and Y axes point along world ``x`` and ``y`` (orthonormal)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return np.stack([x, y, np.cross(x, y)], axis=1)


# --------------------------------------------------------------------------- primitives

@dataclass(frozen=True)
class Primitive:
    """A solid given by its signed distance ``sdf(x, y, z)`` in a local frame.

    world = centre + rotation @ local. ``half`` bounds the solid in the local frame
    (|local| <= half on each axis); the sdf receives broadcastable float32 arrays."""

    sdf: Sdf
    half: Array
    centre: Array
    rotation: Array | None = None

    def bounds(self) -> tuple[Array, Array]:
        """World axis-aligned bounding box (lo, hi)."""
        reach = self.half if self.rotation is None else np.abs(self.rotation) @ self.half
        return self.centre - reach, self.centre + reach

    def distance(self, xs: Array, ys: Array, zs: Array) -> Array:
        """The sdf on the grid block spanned by the 1D world axes ``xs, ys, zs``."""
        c = self.centre.astype(np.float32)
        d = [(xs - c[0])[:, None, None], (ys - c[1])[None, :, None], (zs - c[2])[None, None, :]]
        if self.rotation is None:
            return self.sdf(*d)
        r = self.rotation.astype(np.float32)
        local = []
        for k in range(3):   # local_k = sum_i R[i, k] * d_i, skipping zero terms
            terms = [r[i, k] * d[i] for i in range(3) if abs(r[i, k]) > TINY]
            local.append(sum(terms[1:], terms[0]))
        return self.sdf(*local)


def _length(*parts: Array) -> Array:
    return np.sqrt(sum(p * p for p in parts))


def _extrude(d2: Array, z: Array, half_height: float, edge: float) -> Array:
    """A 2D sdf extruded along z over |z| <= half_height, its rims rounded by ``edge``."""
    wx = d2 + edge
    wz = np.abs(z) - (half_height - edge)
    return _length(np.maximum(wx, 0), np.maximum(wz, 0)) + np.minimum(np.maximum(wx, wz), 0) - edge


def _vec(p) -> Array:
    return np.asarray(p, np.float64).reshape(3)


def slab(centre, size, corner: float = 0.0, edge: float = 0.0, rotation: Array | None = None) -> Primitive:
    """A box of full ``size``; vertical (local Z) edges rounded by ``corner``, the rims by ``edge``."""
    hx, hy, hz = (0.5 * float(s) for s in size)
    corner = min(float(corner), hx, hy)
    edge = min(float(edge), hz, hx, hy)

    def sdf(x, y, z):
        qx = np.abs(x) - (hx - corner)
        qy = np.abs(y) - (hy - corner)
        d2 = _length(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - corner
        return _extrude(d2, z, hz, edge)

    return Primitive(sdf, np.array([hx, hy, hz]), _vec(centre), rotation)


def box(centre, size, radius: float = 0.0, rotation: Array | None = None) -> Primitive:
    """A box of full ``size`` with every edge rounded by ``radius``."""
    return slab(centre, size, radius, radius, rotation)


def cylinder(centre, radius: float, height: float, edge: float = 0.0,
             rotation: Array | None = None) -> Primitive:
    """A cylinder along local Z, its rims rounded by ``edge``."""
    radius, height = float(radius), float(height)
    edge = min(float(edge), radius, 0.5 * height)

    def sdf(x, y, z):
        return _extrude(_length(x, y) - radius, z, 0.5 * height, edge)

    return Primitive(sdf, np.array([radius, radius, 0.5 * height]), _vec(centre), rotation)


def capsule(a, b, radius_a: float, radius_b: float | None = None) -> Primitive:
    """A capsule (or linearly tapered capsule) from point ``a`` to point ``b``, in world coordinates."""
    a, b = _vec(a), _vec(b)
    ra = float(radius_a)
    rb = ra if radius_b is None else float(radius_b)
    centre = 0.5 * (a + b)
    pa0, ba = a - centre, b - a
    (ax, ay, az), (bx, by, bz) = (float(v) for v in pa0), (float(v) for v in ba)
    inv = 1.0 / max(float(ba @ ba), TINY)

    def sdf(x, y, z):
        px, py, pz = x - ax, y - ay, z - az
        h = np.clip((px * bx + py * by + pz * bz) * inv, 0.0, 1.0)
        return _length(px - bx * h, py - by * h, pz - bz * h) - (ra + (rb - ra) * h)

    half = 0.5 * np.abs(ba) + max(ra, rb)
    return Primitive(sdf, half, centre)


def ellipsoid(centre, radii, rotation: Array | None = None) -> Primitive:
    """An ellipsoid with semi-axes ``radii`` (approximate distance, exact sign)."""
    a, b, c = (float(r) for r in radii)

    def sdf(x, y, z):
        k0 = _length(x / a, y / b, z / c)
        k1 = _length(x / (a * a), y / (b * b), z / (c * c))
        return k0 * (k0 - 1.0) / np.maximum(k1, TINY)

    return Primitive(sdf, np.array([a, b, c]), _vec(centre), rotation)


def sphere(centre, radius: float) -> Primitive:
    """A ball."""
    r = float(radius)
    return Primitive(lambda x, y, z: _length(x, y, z) - r, np.full(3, r), _vec(centre))


def torus(centre, major: float, minor: float, rotation: Array | None = None) -> Primitive:
    """A torus around local Z: ring radius ``major``, tube radius ``minor``."""
    major, minor = float(major), float(minor)

    def sdf(x, y, z):
        return _length(_length(x, y) - major, z) - minor

    return Primitive(sdf, np.array([major + minor, major + minor, minor]), _vec(centre), rotation)


def prism(polygon, thickness: float, edge: float = 0.0, centre=(0, 0, 0),
          rotation: Array | None = None) -> Primitive:
    """A convex polygon (local XY, counter-clockwise) extruded over |z| <= thickness/2, rims rounded."""
    poly = np.asarray(polygon, float)
    lo, hi = poly.min(axis=0), poly.max(axis=0)
    mid = 0.5 * (lo + hi)
    poly = poly - mid                    # local origin at the bounding box's centre
    edges = np.roll(poly, -1, axis=0) - poly
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    planes = [(float(n[0]), float(n[1]), float(n @ p)) for n, p in zip(normals, poly)]
    half_height = 0.5 * float(thickness)
    edge = min(float(edge), half_height)

    def sdf(x, y, z):
        d2 = None
        for nx, ny, o in planes:
            d = x * nx + y * ny - o
            d2 = d if d2 is None else np.maximum(d2, d)
        return _extrude(d2, z, half_height, edge)

    mid3 = np.array([mid[0], mid[1], 0.0])
    world_mid = _vec(centre) + (mid3 if rotation is None else rotation @ mid3)
    half = np.array([0.5 * (hi[0] - lo[0]), 0.5 * (hi[1] - lo[1]), half_height])
    return Primitive(sdf, half, world_mid, rotation)


def lathe(centre, heights, radii, rotation: Array | None = None) -> Primitive:
    """A solid of revolution around local Z: radius ``radii`` at ``heights`` (ascending),
    joined by a smooth monotone spline; flat caps at the first and last height."""
    z_knots = np.asarray(heights, float)
    spline = PchipInterpolator(z_knots, np.maximum(np.asarray(radii, float), 0.0))
    table_z = np.linspace(z_knots[0], z_knots[-1], 96)
    table_r = spline(table_z)
    table_scale = 1.0 / np.sqrt(1.0 + spline.derivative()(table_z) ** 2)
    z0, z1 = float(z_knots[0]), float(z_knots[-1])
    zc = 0.5 * (z0 + z1)
    table_z = table_z - zc

    def sdf(x, y, z):
        zf = z.reshape(-1)
        r_at = np.interp(zf, table_z, table_r).astype(np.float32).reshape(z.shape)
        s_at = np.interp(zf, table_z, table_scale).astype(np.float32).reshape(z.shape)
        side = (_length(x, y) - r_at) * s_at
        return np.maximum(side, np.abs(z) - 0.5 * (z1 - z0))

    r_max = float(table_r.max())
    offset = np.array([0.0, 0.0, zc])
    world_centre = _vec(centre) + (offset if rotation is None else rotation @ offset)
    return Primitive(sdf, np.array([r_max, r_max, 0.5 * (z1 - z0)]), world_centre, rotation)


# --------------------------------------------------------------------------- scene

def _smooth_min(a: Array, b: Array, k: float) -> Array:
    """Polynomial smooth minimum: min(a, b) with a fillet about ``k`` wide where they meet."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


@dataclass
class Scene:
    """Primitives added (smooth union) and cut (smooth subtraction) in order, and a
    whole-object ``tilt`` (a lean or bank) that ``make_shape`` applies to the mesh."""

    ops: list[tuple[bool, Primitive, float]] = field(default_factory=list)
    tilt: Array = field(default_factory=lambda: np.eye(3))

    def add(self, primitive: Primitive, blend: float = 0.0) -> None:
        """Union with ``primitive``, filleted over about ``blend``."""
        self.ops.append((True, primitive, float(blend)))

    def cut(self, primitive: Primitive, blend: float = 0.0) -> None:
        """Subtract ``primitive`` from everything added so far."""
        self.ops.append((False, primitive, float(blend)))

    def bounds(self) -> tuple[Array, Array]:
        """Bounding box of the added primitives."""
        boxes = [p.bounds() for add, p, _ in self.ops if add]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)

    def sample(self, grid: int) -> tuple[Array, Array, float]:
        """The truncated field on a grid with ``grid`` samples along the longest side.

        Returns (field indexed [x, y, z], grid origin, spacing). Values are exact
        near the surface and have the right sign everywhere; the border is positive."""
        lo, hi = self.bounds()
        blend = max(k for _, _, k in self.ops)
        spacing = float((hi - lo).max()) / (grid - 1 - 2 * GRID_PAD)
        pad = GRID_PAD + int(math.ceil(0.3 * blend / spacing))
        origin = lo - pad * spacing
        dims = np.ceil((hi - lo) / spacing).astype(int) + 1 + 2 * pad
        grid_axes = [(origin[i] + spacing * np.arange(dims[i])).astype(np.float32) for i in range(3)]
        trunc = blend + 2.0 * spacing
        values = np.full(tuple(dims), trunc, np.float32)
        for add, primitive, k in self.ops:
            p_lo, p_hi = primitive.bounds()
            start = np.clip(np.floor((p_lo - trunc - origin) / spacing).astype(int), 0, dims)
            stop = np.clip(np.ceil((p_hi + trunc - origin) / spacing).astype(int) + 1, 0, dims)
            if np.any(stop <= start):
                continue
            block = tuple(slice(a, b) for a, b in zip(start, stop))
            d = primitive.distance(*(ax[s] for ax, s in zip(grid_axes, block)))
            current = values[block]
            values[block] = _smooth_min(current, d, k) if add else -_smooth_min(-current, d, k)
        for axis in range(3):
            border = [slice(None)] * 3
            for end in (0, -1):
                border[axis] = end
                values[tuple(border)] = trunc
        return values, origin, spacing

    def mesh(self, grid: int, max_faces: int = MAX_FACES) -> tuple[Array, Array]:
        """A closed, outward triangle mesh of the scene; coarser than ``grid`` if it would
        exceed ``max_faces``."""
        values, origin, spacing = self.sample(grid)
        faces = _face_count(values)
        if faces > max_faces:
            coarser = int(grid * math.sqrt(max_faces / faces) * 0.97)
            values, origin, spacing = self.sample(max(coarser, 24))
        _resolve_ambiguous_faces(values, spacing)
        return _drop_specks(*surface_nets(values, origin, spacing))


def _drop_specks(vertices: Array, faces: Array, min_part: float = MIN_PART) -> tuple[Array, Array]:
    """Remove tiny loose pieces (grid-scale specks where a thin tip broke off); each
    piece is closed on its own, so the rest stays closed."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(vertices),) * 2)
    count, label = connected_components(graph, directed=False)
    if count == 1:
        return vertices, faces
    keep = np.bincount(label, minlength=count) >= min_part * len(vertices)
    kept = keep[label]
    index = np.cumsum(kept) - 1
    return vertices[kept], index[faces[kept[faces[:, 0]]]]


def _face_count(values: Array) -> int:
    """Triangles surface nets will make: two per grid edge that the surface crosses."""
    inside = values < 0
    return 2 * sum(int(np.count_nonzero(np.diff(inside, axis=a))) for a in range(3))


def _resolve_ambiguous_faces(values: Array, spacing: float, rounds: int = 8) -> None:
    """Make surface nets' output edge-manifold, in place.

    A grid square whose corners alternate inside/outside gives four quads on one dual
    edge. Marking its least-outside corner inside joins the two sheets there, which
    is what thin parts sampled at the grid's limit should do."""
    for _ in range(rounds):
        inside = values < 0
        found = False
        for a, b in ((0, 1), (0, 2), (1, 2)):
            s00 = _shifted(inside, a, b, 0, 0)
            s10 = _shifted(inside, a, b, 1, 0)
            s01 = _shifted(inside, a, b, 0, 1)
            s11 = _shifted(inside, a, b, 1, 1)
            ambiguous = (s00 == s11) & (s10 == s01) & (s00 != s10)
            if not ambiguous.any():
                continue
            found = True
            for where in np.argwhere(ambiguous):
                corners = []
                for da, db in ((0, 0), (1, 0), (0, 1), (1, 1)):
                    idx = where.copy()
                    idx[a] += da
                    idx[b] += db
                    corners.append(tuple(idx))
                outside = [c for c in corners if values[c] >= 0]
                if len(outside) == 2:   # an earlier fix in this round may already have joined it
                    values[min(outside, key=lambda c: values[c])] = -0.01 * spacing
        if not found:
            return


def _shifted(array: Array, a: int, b: int, da: int, db: int) -> Array:
    index = [slice(None)] * 3
    index[a] = slice(da, array.shape[a] - 1 + da)
    index[b] = slice(db, array.shape[b] - 1 + db)
    return array[tuple(index)]


# --------------------------------------------------------------------------- families
# Each builder returns a Scene in the design frame: Z up, front towards -Y.

def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


_AROUND = ((-1, -1), (1, -1), (1, 1), (-1, 1))   # rectangle corners in order around


def _chair(rng: np.random.Generator) -> Scene:
    """Seats round or square, on 3-4 legs (straight or splayed, round or square, with or
    without stretchers), a swivel pedestal or sled runners; backs solid, framed, slatted,
    laddered or absent (stools); optional arms."""
    s = Scene()
    base = _pick(rng, {"legs": 0.6, "pedestal": 0.25, "sled": 0.15})
    back = _pick(rng, {"none": 0.15, "solid": 0.3, "slats": 0.2, "ladder": 0.15, "frame": 0.2})
    stool = back == "none"
    round_seat = rng.random() < (0.6 if stool else 0.15)
    w = rng.uniform(0.40, 0.62)
    d = w if round_seat else w * rng.uniform(0.85, 1.15)
    seat_top = rng.uniform(0.55, 0.8) if stool and rng.random() < 0.5 else rng.uniform(0.4, 0.52)
    t = rng.uniform(0.035, 0.11)
    seat_z = seat_top - 0.5 * t
    corner = 0.5 * w if round_seat else rng.uniform(0.01, 0.15)
    if round_seat:
        s.add(cylinder((0, 0, seat_z), 0.5 * w, t, edge=rng.uniform(0.005, 0.5 * t)))
    else:
        s.add(slab((0, 0, seat_z), (w, d, t), corner=corner, edge=rng.uniform(0.005, 0.5 * t)))
    under = seat_top - t

    if base == "legs":
        n = 3 if rng.random() < (0.4 if stool else 0.1) else 4
        inset = rng.uniform(0.03, 0.08)
        splay = rng.uniform(0.0, 0.1) if rng.random() < 0.5 else 0.0
        square = splay == 0.0 and rng.random() < 0.5
        r = rng.uniform(0.018, 0.035)
        if round_seat or n == 3:
            start = rng.uniform(0, 2 * math.pi) if round_seat else -math.pi / 2 + math.pi / n
            ang = start + 2 * math.pi * np.arange(n) / n
            tops = [(0.5 * w - inset) * np.array([math.cos(a), math.sin(a)]) for a in ang]
        else:
            tops = [np.array([sx * (0.5 * w - inset), sy * (0.5 * d - inset)]) for sx, sy in _AROUND]
        feet = []
        for top in tops:
            out = top / max(np.linalg.norm(top), TINY)
            foot = top + splay * out + rng.normal(0, 0.006, 2)
            feet.append(foot)
            if square:
                s.add(box((top[0], top[1], 0.5 * under), (2 * r, 2 * r, under), 0.3 * r))
            else:
                s.add(capsule((top[0], top[1], under), (foot[0], foot[1], r), r, r * rng.uniform(0.6, 1.0)))
        if rng.random() < 0.4:   # stretchers between neighbouring legs
            h = rng.uniform(0.1, 0.25)
            ring = [top + (foot - top) * (1 - h / under) for top, foot in zip(tops, feet)]
            for i, (p, q) in enumerate(zip(ring, ring[1:] + ring[:1])):
                if len(ring) == 4 and not round_seat and i % 2 == 1 and rng.random() < 0.5:
                    continue   # sometimes only the side rails (an H)
                s.add(capsule((p[0], p[1], h), (q[0], q[1], h), 0.7 * r))
    elif base == "pedestal":
        disk = rng.random() < 0.35
        foot_z = 0.02 if disk else rng.uniform(0.04, 0.1)
        s.add(capsule((0, 0, under), (0, 0, foot_z), rng.uniform(0.025, 0.05)))
        if disk:
            s.add(cylinder((0, 0, 0.02), rng.uniform(0.18, 0.3), 0.04, edge=0.015), blend=0.03)
        else:
            n = int(rng.integers(4, 6))
            reach = rng.uniform(0.22, 0.34)
            a0 = rng.uniform(0, 2 * math.pi)
            for i in range(n):
                a = a0 + 2 * math.pi * i / n
                end = (reach * math.cos(a), reach * math.sin(a), 0.03)
                s.add(capsule((0, 0, foot_z), end, 0.025, 0.018), blend=0.02)
                s.add(sphere((end[0], end[1], 0.022), 0.022))
    else:  # sled
        r = rng.uniform(0.014, 0.022)
        x = 0.5 * w * (0.6 if round_seat else 1.0) - rng.uniform(0.02, 0.06)
        y1 = (math.sqrt(0.25 * w * w - x * x) if round_seat else 0.5 * d) - 0.03
        y0 = -y1
        for sx in (-1, 1):
            s.add(capsule((sx * x, y0 - 0.04, r), (sx * x, y1 + 0.02, r), r))
            s.add(capsule((sx * x, y0, r), (sx * x, y0 + 0.04, under), r), blend=0.02)
            s.add(capsule((sx * x, y1, r), (sx * x, y1 - 0.02, under), r), blend=0.02)

    if not stool:
        _chair_back(s, rng, back, w, d, seat_top, round_seat)
        if not round_seat and rng.random() < 0.35:
            _chair_arms(s, rng, w, d, seat_top, corner)
    return s


def _chair_back(s: Scene, rng: np.random.Generator, kind: str, w: float, d: float, seat_top: float,
                round_seat: bool) -> None:
    """A backrest standing on the seat's rear edge, tilted back."""
    height = rng.uniform(0.3, 0.6)
    thick = rng.uniform(0.025, 0.06)
    tilt = rng.uniform(0.0, 0.3)
    rot = rot_x(-tilt)
    width = w * (rng.uniform(0.5, 0.75) if round_seat else rng.uniform(0.8, 1.0))
    rear = math.sqrt(0.25 * w * w - 0.25 * width * width) if round_seat else 0.5 * d
    base = np.array([0.0, rear - 0.5 * thick - rng.uniform(0, 0.03), seat_top - 0.02])

    def at(x: float, z: float) -> Array:
        return base + rot @ np.array([x, 0.0, z])

    if kind == "solid":
        s.add(slab(at(0, 0.5 * height), (width, thick, height), corner=rng.uniform(0.01, 0.12), edge=0.4 * thick,
                   rotation=rot))
        return
    post = rng.uniform(0.018, 0.03)
    rail = rng.uniform(0.05, 0.12)
    for sx in (-1, 1):
        s.add(box(at(sx * (0.5 * width - post), 0.5 * height), (2 * post, thick, height), 0.3 * post, rot))
    s.add(slab(at(0, height - 0.5 * rail), (width, thick, rail), corner=rng.uniform(0.005, 0.05), edge=0.4 * thick,
               rotation=rot))
    inner = width - 4 * post
    if kind == "slats":
        n = int(rng.integers(2, 7))
        slat = min(rng.uniform(0.02, 0.06), 0.8 * inner / n)
        for i in range(n):
            x = -0.5 * inner + inner * (i + 0.5) / n
            s.add(box(at(x, 0.5 * (height - rail)), (slat, 0.7 * thick, height - rail), 0.004, rot))
    elif kind == "ladder":
        n = int(rng.integers(1, 4))
        for i in range(n):
            z = (height - rail) * (i + 1) / (n + 1)
            s.add(box(at(0, z), (inner + 2 * post, 0.8 * thick, rng.uniform(0.03, 0.06)), 0.006, rot))
    elif kind == "frame" and rng.random() < 0.5:
        s.add(box(at(0, 0.04), (inner + 2 * post, 0.8 * thick, 0.05), 0.006, rot))


def _chair_arms(s: Scene, rng: np.random.Generator, w: float, d: float, seat_top: float, corner: float) -> None:
    """Armrests on posts (standing on the seat), or solid side panels."""
    height = rng.uniform(0.17, 0.28)
    aw = rng.uniform(0.035, 0.08)
    at = rng.uniform(0.025, 0.05)
    y0 = -0.5 * d + rng.uniform(0.0, 0.08)
    y1 = 0.5 * d - 0.02
    panel = rng.random() < 0.3
    for sx in (-1, 1):
        x = sx * (0.5 * w + 0.5 * aw - 0.03)
        z = seat_top + height + rng.normal(0, 0.005)
        s.add(box((x, 0.5 * (y0 + y1), z), (aw, y1 - y0, at), 0.2 * at + 0.004))
        if panel:
            bottom = seat_top - 0.05
            s.add(box((x, 0.5 * (y0 + y1), 0.5 * (bottom + z)), (aw * 0.8, y1 - y0 - 0.02, z - bottom), 0.01))
        else:
            post = (sx * (0.5 * w - 0.02), -0.5 * d + max(corner, 0.04) + 0.02)
            s.add(capsule((post[0], post[1] - rng.uniform(0, 0.04), z), (post[0], post[1], seat_top - 0.03), 0.016))


def _table(rng: np.random.Generator) -> Scene:
    """Rectangular, round or oval tops on four legs (with aprons, shelves, splay), a
    pedestal, trestles or side panels; heights from coffee to bar tables."""
    s = Scene()
    shape = _pick(rng, {"rect": 0.55, "round": 0.3, "oval": 0.15})
    base = _pick(rng, {"legs": 0.5, "pedestal": 0.25, "trestle": 0.15, "panels": 0.1})
    if shape == "round":
        length = width = rng.uniform(0.6, 1.2)
        if base in ("trestle", "panels"):
            base = "legs"
    else:
        length = rng.uniform(0.7, 1.9)
        width = length * rng.uniform(0.4, 0.9)
    height = rng.uniform(0.4, 0.8) if rng.random() < 0.85 else rng.uniform(0.9, 1.1)
    t = rng.uniform(0.025, 0.07)
    top_z = height - 0.5 * t
    edge = rng.uniform(0.004, 0.5 * t)
    if shape == "round":
        s.add(cylinder((0, 0, top_z), 0.5 * length, t, edge))
    else:
        corner = 0.5 * width if shape == "oval" else rng.uniform(0.0, 0.1)
        s.add(slab((0, 0, top_z), (length, width, t), corner, edge))
    under = height - t

    if base == "legs":
        inset = rng.uniform(0.03, 0.12)
        r = rng.uniform(0.02, 0.045)
        splay = rng.uniform(0, 0.08) if rng.random() < 0.3 else 0.0
        square = splay == 0.0 and rng.random() < 0.5
        if shape == "rect":
            tops = [np.array([sx * (0.5 * length - inset), sy * (0.5 * width - inset)]) for sx, sy in _AROUND]
        else:
            n = 3 if shape == "round" and rng.random() < 0.3 else 4
            a0 = math.pi / 4 if n == 4 else -math.pi / 2
            ang = a0 + 2 * math.pi * np.arange(n) / n
            tops = [np.array([(0.5 * length - inset) * 0.8 * math.cos(a), (0.5 * width - inset) * 0.8 * math.sin(a)])
                    for a in ang]
        for top in tops:
            out = top / max(np.linalg.norm(top), TINY)
            foot = top + splay * out + rng.normal(0, 0.005, 2)
            if square:
                s.add(box((top[0], top[1], 0.5 * under), (2 * r, 2 * r, under), 0.2 * r))
            else:
                s.add(capsule((top[0], top[1], under), (foot[0], foot[1], r), r, r * rng.uniform(0.5, 1.0)))
        if shape == "rect" and rng.random() < 0.45:
            apron = rng.uniform(0.05, 0.12)
            inner_l, inner_w = 0.5 * length - inset, 0.5 * width - inset
            s.add(box((0, -inner_w, under - 0.5 * apron), (2 * inner_l, 0.02, apron), 0.004))
            s.add(box((0, inner_w, under - 0.5 * apron), (2 * inner_l, 0.02, apron), 0.004))
            s.add(box((-inner_l, 0, under - 0.5 * apron), (0.02, 2 * inner_w, apron), 0.004))
            s.add(box((inner_l, 0, under - 0.5 * apron), (0.02, 2 * inner_w, apron), 0.004))
        if shape == "rect" and splay == 0 and rng.random() < 0.2:
            z = rng.uniform(0.08, 0.3 * under)
            s.add(box((0, 0, z), (length - 2 * inset, width - 2 * inset, 0.025), 0.005))
    elif base == "pedestal":
        r = rng.uniform(0.04, 0.1)
        s.add(lathe((0, 0, 0), [0.0, 0.3 * under, 0.7 * under, under],
                    [r * rng.uniform(1.0, 2.0), r * rng.uniform(0.7, 1.5), r, r * rng.uniform(1.0, 1.6)]))
        reach = rng.uniform(0.25, 0.45) * min(length, width) * 1.4
        if rng.random() < 0.5:
            s.add(cylinder((0, 0, 0.02), min(reach, 0.5 * width), 0.04, 0.015), blend=0.04)
        else:
            n = int(rng.integers(3, 5))
            a0 = rng.uniform(0, 2 * math.pi)
            for i in range(n):
                a = a0 + 2 * math.pi * i / n
                s.add(capsule((0, 0, 0.08), (reach * math.cos(a), reach * math.sin(a), 0.025), 0.035, 0.022), 0.03)
    elif base == "trestle":
        x = 0.5 * length - rng.uniform(0.1, 0.25)
        depth = width * rng.uniform(0.2, 0.5)
        thick = rng.uniform(0.04, 0.08)
        foot = width * rng.uniform(0.6, 0.9)
        for sx in (-1, 1):
            s.add(box((sx * x, 0, 0.5 * under), (thick, depth, under), 0.01))
            s.add(box((sx * x, 0, 0.03), (thick * 1.3, foot, 0.06), 0.015))
            s.add(box((sx * x, 0, under - 0.02), (thick * 1.2, foot, 0.04), 0.01))
        z = rng.uniform(0.15, 0.6) * under
        s.add(box((0, 0, z), (2 * x, 0.06, 0.06), 0.01))
    else:  # panels
        thick = rng.uniform(0.025, 0.06)
        x = 0.5 * length - rng.uniform(0.0, 0.06) - 0.5 * thick
        for sx in (-1, 1):
            s.add(box((sx * x, 0, 0.5 * under), (thick, width * rng.uniform(0.85, 1.0), under), 0.006))
        if rng.random() < 0.6:
            s.add(box((0, 0.4 * width, 0.55 * under), (2 * x, 0.02, 0.4 * under), 0.005))
    return s


def _airplane(rng: np.random.Generator) -> Scene:
    """A fuselage with airliner-to-fighter noses, straight to delta wings (sweep, taper,
    dihedral, high/mid/low), 0/2/4 wing engines or 2 rear engines, and conventional,
    T, twin or V tails. Nose towards -Y, slightly banked."""
    s = Scene(tilt=rot_y(rng.normal(0.0, 0.04)))
    fr = rng.uniform(0.04, 0.08)
    nose = rng.uniform(0.08, 0.25)
    tail = rng.uniform(0.22, 0.38)
    to_world = axes((1, 0, 0), (0, 0, 1))           # local z (lathe axis) = world -Y: the nose
    s.add(lathe((0, 0, 0), [-0.5, -0.5 + tail, 0.5 - nose, 0.5 - 0.45 * nose, 0.5],
                [fr * rng.uniform(0.25, 0.45), fr, fr, fr * rng.uniform(0.55, 0.85), fr * rng.uniform(0.0, 0.3)],
                to_world))
    if rng.random() < 0.5:
        s.add(ellipsoid((0, -0.5 + nose * 1.2, fr * 0.75), (fr * 0.6, nose * 0.7, fr * 0.45)), 0.02)

    delta = rng.random() < 0.2
    span = rng.uniform(0.35, 0.6) if delta else rng.uniform(0.4, 0.8)
    root = rng.uniform(0.35, 0.55) if delta else rng.uniform(0.12, 0.28)
    taper = rng.uniform(0.03, 0.2) if delta else rng.uniform(0.25, 0.7)
    sweep = rng.uniform(0.6, 1.0) if delta else rng.uniform(0.0, 0.7)
    dihedral = rng.uniform(-0.05, 0.12)
    y_le = rng.uniform(-0.15, 0.05) - (0.1 if delta else 0.0)
    z_w = fr * rng.choice([-0.6, 0.0, 0.6])
    thick = rng.uniform(0.022, 0.032)
    _wing_pair(s, y_le, root, taper, span, sweep, dihedral, z_w, thick, blend=0.015)

    engines = _pick(rng, {"none": 0.3, "wing2": 0.4, "wing4": 0.15, "rear2": 0.15})
    if delta and engines.startswith("wing"):
        engines = "none"
    er = rng.uniform(0.03, 0.05)
    el = rng.uniform(0.12, 0.22)
    for f in {"wing2": [0.35], "wing4": [0.3, 0.6]}.get(engines, []):
        x = f * span
        y = y_le + x * math.tan(sweep) - 0.4 * el
        z = z_w - thick - er * 1.1 + x * math.sin(dihedral)
        for sx in (-1, 1):
            s.add(capsule((sx * x, y - 0.5 * el, z), (sx * x, y + 0.5 * el, z), er, er * 0.8))
            s.add(box((sx * x, y + 0.2 * el, z + er), (0.015, 0.5 * el, 2 * er), 0.005), 0.01)
    if engines == "rear2":
        for sx in (-1, 1):
            y = 0.5 - tail - 0.1
            s.add(capsule((sx * (fr + er), y - 0.5 * el, 0.3 * fr), (sx * (fr + er), y + 0.5 * el, 0.3 * fr), er), 0.02)

    kind = _pick(rng, {"conventional": 0.5, "t": 0.2, "twin": 0.15, "v": 0.15})
    fin_h = rng.uniform(0.1, 0.22)
    fin_c = rng.uniform(0.1, 0.2)
    fin_sweep = rng.uniform(0.3, 0.9)
    h_span = rng.uniform(0.12, 0.25)
    h_c = rng.uniform(0.07, 0.14)
    y_tail = 0.5 - rng.uniform(0.02, 0.06)
    z_top = fr * 0.3
    if kind == "v":
        for sx in (-1, 1):
            tilt = sx * rng.uniform(0.5, 0.8)
            _fin(s, y_tail, fin_c, 0.6 * fin_c, fin_h * 1.2, fin_sweep, (0, 0, z_top), rot_y(tilt))
        return s
    h_z = z_top + fin_h * 0.9 if kind == "t" else 0.0
    _wing_pair(s, y_tail - h_c - 0.02, h_c, rng.uniform(0.4, 0.8), h_span, rng.uniform(0.1, 0.6), 0.0,
               h_z, thick * 0.9, blend=0.0)
    if kind == "twin":
        for sx in (-1, 1):
            base = (sx * h_span, 0, -0.2 * fin_h)
            _fin(s, y_tail - 0.02, 0.8 * fin_c, 0.5 * fin_c, 0.8 * fin_h, fin_sweep, base, None)
    else:
        _fin(s, y_tail, fin_c, 0.5 * fin_c, fin_h, fin_sweep, (0, 0, z_top), None)
    return s


def _wing_pair(s: Scene, y_le: float, root: float, taper: float, span: float, sweep: float,
               dihedral: float, z: float, thick: float, blend: float) -> None:
    """Two mirrored trapezoid wings from the plane's centre line (planform in XY), each
    tip raised by ``dihedral`` radians."""
    tip_le = span * math.tan(sweep)
    for sx in (-1, 1):
        poly = [(0.0, 0.0), (span, tip_le), (span, tip_le + taper * root), (0.0, root)]
        if sx < 0:
            poly = [(-x, y) for x, y in reversed(poly)]
        rot = rot_y(-sx * dihedral)
        s.add(prism(poly, thick, 0.45 * thick, centre=(0, y_le, z), rotation=rot), blend=blend)


def _fin(s: Scene, y_te: float, root: float, tip: float, height: float, sweep: float, base,
         tilt: Array | None) -> None:
    """A vertical fin ending at ``y_te``, with swept leading edge."""
    le_top = min(y_te - root + height * math.tan(sweep), y_te - 0.5 * tip)
    poly = [(y_te - root, -0.02), (y_te, -0.02), (le_top + tip, height), (le_top, height)]
    local = axes((0, 1, 0), (0, 0, 1))
    rot = local if tilt is None else tilt @ local
    s.add(prism(poly, 0.028, 0.012, centre=base, rotation=rot), blend=0.015)


def _quadruped(rng: np.random.Generator) -> Scene:
    """Dachshund-to-giraffe bodies: chest and hips, leg length, neck length and angle,
    head and snout sizes, ears or horns, tails long or short; poses turn the head,
    swing or lift legs and wag the tail. Head towards -Y."""
    s = Scene()
    bl = rng.uniform(0.6, 1.0)
    bw = rng.uniform(0.1, 0.2)
    bh = rng.uniform(0.13, 0.26)
    ll = rng.uniform(0.22, 0.85)
    zb = ll + 0.35 * bh
    s.add(ellipsoid((0, -0.2 * bl, zb + 0.1 * bh), (bw, 0.35 * bl, 0.55 * bh)))
    s.add(ellipsoid((0, 0.22 * bl, zb), (bw * rng.uniform(0.8, 1.0), 0.33 * bl, 0.5 * bh * rng.uniform(0.8, 1.0))),
          blend=0.12)
    ru = rng.uniform(0.035, 0.06)
    rl = ru * rng.uniform(0.55, 0.8)
    lifted = int(rng.integers(0, 4)) if rng.random() < 0.3 else -1
    for i, (sx, front) in enumerate(((-1, True), (1, True), (-1, False), (1, False))):
        y = (-0.3 if front else 0.3) * bl
        hip = np.array([sx * 0.6 * bw, y, zb - 0.1 * bh])
        foot = np.array([sx * 0.65 * bw + rng.normal(0, 0.01), y + rng.normal(0, 0.05) * ll, rl])
        bend = (-1 if front else 1) * rng.uniform(0.0, 0.12) * ll
        if i == lifted:
            foot = foot + np.array([0, -rng.uniform(0.1, 0.3) * ll, rng.uniform(0.2, 0.45) * ll])
            bend = -0.2 * ll
        knee = 0.5 * (hip + foot) + np.array([0, bend, 0])
        s.add(capsule(hip, knee, ru, 0.8 * ru), blend=0.06)
        s.add(capsule(knee, foot, 0.8 * ru, rl), blend=0.02)
        s.add(ellipsoid(foot + np.array([0, -0.3 * rl, -0.2 * rl]), (1.1 * rl, 1.5 * rl, 0.9 * rl)), blend=0.01)

    turn = rng.normal(0, 0.35)
    elev = rng.uniform(0.2, 1.3)
    nl = rng.uniform(0.08, 0.35) + (rng.uniform(0.2, 0.5) if rng.random() < 0.15 else 0.0)
    base = np.array([0, -0.48 * bl, zb + 0.3 * bh])
    direction = np.array([math.cos(elev) * math.sin(turn), -math.cos(elev) * math.cos(turn), math.sin(elev)])
    head = base + nl * direction
    nr = rng.uniform(0.04, 0.09)
    s.add(capsule(base - 0.1 * direction, head, max(nr, 0.5 * bh), nr), blend=0.08)
    hr = rng.uniform(0.06, 0.12)
    face = rot_z(turn + rng.normal(0, 0.2)) @ rot_x(-rng.uniform(0.0, 0.5))
    s.add(ellipsoid(head, (hr * 0.85, hr * 1.1, hr * 0.9), face), blend=0.04)
    snout = rng.uniform(0.04, 0.2)
    tip = head + face @ np.array([0, -hr - snout, -0.2 * hr])
    s.add(capsule(head + face @ np.array([0, -0.5 * hr, -0.2 * hr]), tip, 0.7 * hr, rng.uniform(0.35, 0.6) * hr),
          blend=0.03)
    ears = _pick(rng, {"ears": 0.6, "horns": 0.2, "none": 0.2})
    for sx in (-1, 1):
        root = head + face @ np.array([sx * 0.55 * hr, 0.2 * hr, 0.6 * hr])
        if ears == "ears":
            up = face @ np.array([sx * 0.4, 0.3, 1.0])
            length = rng.uniform(0.5, 1.4) * hr
            s.add(capsule(root, root + length * up / np.linalg.norm(up), 0.3 * hr, 0.15 * hr), blend=0.02)
        elif ears == "horns":
            mid = root + face @ np.array([sx * 0.5 * hr, 0.5 * hr, 0.9 * hr])
            end = mid + face @ np.array([sx * 0.2 * hr, 1.2 * hr, 0.5 * hr])
            s.add(capsule(root, mid, 0.25 * hr, 0.2 * hr), blend=0.02)
            s.add(capsule(mid, end, 0.2 * hr, 0.14 * hr))

    if rng.random() < 0.85:
        tl = rng.uniform(0.1, 0.55)
        point = np.array([0, 0.52 * bl, zb + 0.15 * bh])
        pitch = rng.uniform(-1.2, 0.9)
        yaw = rng.normal(0, 0.4)
        r = rng.uniform(0.025, 0.05)
        for k in range(3):
            step = rot_z(yaw) @ np.array([0, math.cos(pitch), math.sin(pitch)]) * tl / 3
            nxt = point + step
            r_next = max(0.022, r * 0.8)
            s.add(capsule(point, nxt, r, r_next), blend=0.03 if k == 0 else 0.01)
            point, r = nxt, r_next
            pitch += rng.uniform(-0.5, 0.5)
            yaw += rng.normal(0, 0.3)
    return s


def _humanoid(rng: np.random.Generator) -> Scene:
    """Realistic to big-headed figures: leg, torso and limb proportions, shoulders, belly,
    optional skirt; each arm and leg posed on its own (hanging, raised, bent, striding),
    head turned and tilted, body leaning slightly. Facing -Y."""
    s = Scene(tilt=rot_x(rng.normal(0.0, 0.04)) @ rot_y(rng.normal(0.0, 0.03)))
    ll = rng.uniform(0.7, 0.95)
    tl = rng.uniform(0.45, 0.65)
    hr = rng.uniform(0.09, 0.2)
    sw = rng.uniform(0.15, 0.25)
    hw = rng.uniform(0.07, 0.13)
    ra = rng.uniform(0.04, 0.065)
    rl = rng.uniform(0.055, 0.09)
    belly = rng.uniform(0.0, 0.08) if rng.random() < 0.3 else 0.0
    pelvis_z = ll
    s.add(ellipsoid((0, 0, pelvis_z + 0.05), (hw + rl, 0.1 + 0.5 * belly, 0.13)))
    chest_z = pelvis_z + tl * 0.62
    s.add(ellipsoid((0, 0, chest_z), (sw * 0.85, rng.uniform(0.1, 0.14), tl * 0.38)), blend=0.12)
    if belly:
        s.add(ellipsoid((0, -belly, pelvis_z + tl * 0.3), (sw * 0.7, 0.12 + belly, tl * 0.25)), blend=0.1)
    if rng.random() < 0.15:
        drop = rng.uniform(0.2, 0.55) * ll
        waist = hw + rl + 0.02
        s.add(lathe((0, 0, pelvis_z - drop), [0.0, 0.5 * drop, drop + 0.15],
                    [waist + rng.uniform(0.1, 0.25), waist + rng.uniform(0.03, 0.1), waist]), blend=0.03)
    neck_top = pelvis_z + tl + rng.uniform(0.03, 0.08)
    s.add(capsule((0, 0, pelvis_z + tl * 0.9), (0, 0, neck_top), rng.uniform(0.04, 0.06)), blend=0.04)
    turn, tilt = rng.normal(0, 0.35), rng.normal(0, 0.12)
    head_rot = rot_z(turn) @ rot_y(tilt)
    head = np.array([0, 0, neck_top + 0.85 * hr])
    s.add(ellipsoid(head, (0.85 * hr, 0.95 * hr, hr), head_rot), blend=0.03)
    s.add(ellipsoid(head + head_rot @ np.array([0, -0.92 * hr, -0.1 * hr]), (0.15 * hr, 0.15 * hr, 0.22 * hr)),
          blend=0.02)

    ua, fa = rng.uniform(0.25, 0.33), rng.uniform(0.23, 0.3)
    raised = int(rng.integers(0, 2)) if rng.random() < 0.25 else -1
    shoulder_z = pelvis_z + tl * 0.88
    s.add(capsule((-sw, 0, shoulder_z), (sw, 0, shoulder_z), 1.2 * ra), blend=0.08)
    for i, sx in enumerate((-1, 1)):
        shoulder = np.array([sx * sw, 0, shoulder_z])
        abduct = rng.uniform(2.2, 2.9) if i == raised else rng.uniform(0.05, 1.6)
        flex = rng.uniform(-0.4, 0.9)
        upper = rot_x(-flex) @ rot_y(-sx * abduct) @ np.array([0, 0, -1.0])
        elbow = shoulder + ua * upper
        fore = rot_x(-rng.uniform(0.0, 1.6)) @ upper
        wrist = elbow + fa * fore
        s.add(capsule(shoulder, elbow, ra * 1.15, ra), blend=0.05)
        s.add(capsule(elbow, wrist, ra, 0.8 * ra), blend=0.02)
        s.add(sphere(wrist + 0.6 * ra * fore, 1.2 * ra), blend=0.02)

    stride = rng.uniform(0.0, 0.5)
    for i, sx in enumerate((-1, 1)):
        hip = np.array([sx * hw, 0, pelvis_z])
        spread = rng.uniform(0.0, 0.3)
        swing = (stride if i == 0 else -stride) * rng.choice([-1, 1]) * 0.5 + rng.normal(0, 0.08)
        thigh = rot_x(-swing) @ rot_y(-sx * spread) @ np.array([0, 0, -1.0])
        knee = hip + 0.5 * ll * thigh
        shin = rot_x(rng.uniform(0.0, 0.5)) @ thigh
        ankle = knee + 0.47 * ll * shin
        s.add(capsule(hip, knee, rl * 1.15, rl * 0.9), blend=0.06)
        s.add(capsule(knee, ankle, rl * 0.9, rl * 0.6), blend=0.02)
        foot = rng.uniform(0.2, 0.27)
        toe_out = rot_z(sx * rng.uniform(0, 0.3))
        s.add(box(ankle + np.array([0, -0.3 * foot, -0.02]), (0.09, foot, 0.06), 0.025, toe_out), blend=0.02)
    return s


def _frame_z(direction) -> Array:
    """A rotation whose local Z points along ``direction``."""
    z = np.asarray(direction, float)
    z = z / np.linalg.norm(z)
    helper = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return axes(x, np.cross(z, x))


def _lathe_object(rng: np.random.Generator) -> Scene:
    """Vases and goblets (random spline profiles, usually open at the top), bottles
    (round or square bodies, shoulders, necks, caps) and lamps (table lamps with drum or
    cone shades, or angled desk lamps)."""
    kind = _pick(rng, {"vase": 0.35, "bottle": 0.3, "lamp": 0.35})
    return {"vase": _vase, "bottle": _bottle, "lamp": _lamp}[kind](rng)


def _vase(rng: np.random.Generator) -> Scene:
    s = Scene()
    if rng.random() < 0.2:   # goblet / chalice
        rb, rs, rc = rng.uniform(0.15, 0.28), rng.uniform(0.035, 0.07), rng.uniform(0.2, 0.38)
        z_stem = rng.uniform(0.25, 0.5)
        heights = [0.0, 0.03, 0.1, z_stem, z_stem + 0.12, 0.8, 1.0]
        radii = [rb, rb * 0.9, rs, rs, rc * rng.uniform(0.4, 0.7), rc, rc * rng.uniform(0.9, 1.1)]
    else:
        n = int(rng.integers(4, 8))
        heights = list(np.linspace(0.0, 1.0, n) + np.r_[0, rng.uniform(-0.3, 0.3, n - 2) / n, 0])
        radii = [rng.uniform(0.1, 0.3)]
        for _ in range(n - 1):
            radii.append(float(np.clip(radii[-1] * math.exp(rng.normal(0, 0.4)), 0.06, 0.42)))
    s.add(lathe((0, 0, 0), heights, radii))
    wall = 0.035
    if rng.random() < 0.8:
        _hollow(s, PchipInterpolator(heights, radii), wall, 1.0 - rng.uniform(0.1, 0.85), 1.0)
        top = float(PchipInterpolator(heights, radii)(1.0))
        if top > 2.5 * wall and rng.random() < 0.4:
            s.add(torus((0, 0, 1.0), top - 0.5 * wall, 0.6 * wall))
    return s


def _hollow(s: Scene, profile: PchipInterpolator, wall: float, floor: float, top: float) -> None:
    """Cut a cavity open at ``top`` into the solid of revolution ``profile``, leaving walls
    ``wall`` thick (measured across the wall); the floor is raised above any waist too
    narrow to hollow, so the cavity never becomes an enclosed void."""
    def inner(z: Array) -> Array:
        return profile(z) - wall * np.sqrt(1.0 + profile.derivative()(z) ** 2)

    probe = np.linspace(floor, top, 64)
    narrow = np.flatnonzero(inner(probe) < 1.2 * wall)
    if len(narrow):
        floor = probe[narrow[-1]] + 2 * wall
    if floor > top - 2 * wall:
        return
    z = np.linspace(floor, top, 24)
    r = inner(z)
    s.cut(lathe((0, 0, 0), list(z) + [top + 0.2], list(r) + [r[-1]]), blend=0.01)


def _bottle(rng: np.random.Generator) -> Scene:
    s = Scene()
    rb = rng.uniform(0.12, 0.25)
    hb = rng.uniform(0.35, 0.65)
    shoulder = rng.uniform(0.06, 0.22)
    rn = rng.uniform(0.045, 0.09)
    heights = [0.0, 0.02, hb, hb + 0.5 * shoulder, hb + shoulder, 1.0]
    radii = [rb * 0.93, rb, rb * rng.uniform(0.9, 1.08), 0.5 * (rb + rn) * rng.uniform(0.8, 1.15), rn, rn]
    if rng.random() < 0.2:   # square body, round neck
        depth = 2 * rb * rng.uniform(0.5, 1.0)
        s.add(slab((0, 0, 0.5 * hb), (2 * rb, depth, hb), corner=rng.uniform(0.01, 0.5 * depth), edge=0.02))
        s.add(lathe((0, 0, hb - 0.05), [0.0, 0.05, 0.05 + shoulder, 1.05 - hb],
                    [0.5 * depth, 0.5 * depth * 0.9, rn, rn]), blend=0.03)
    else:
        s.add(lathe((0, 0, 0), heights, radii))
    closure = _pick(rng, {"cap": 0.4, "lip": 0.35, "open": 0.25})
    if closure == "cap":
        ch = rng.uniform(0.05, 0.12)
        s.add(cylinder((0, 0, 1.0 + 0.5 * ch - 0.02), rn * rng.uniform(1.05, 1.3), ch, 0.01))
    elif closure == "lip":
        s.add(torus((0, 0, 1.0 - 0.015), rn, rng.uniform(0.015, 0.025)))
    elif rn > 0.06:
        s.cut(cylinder((0, 0, 1.0), rn - 0.03, 0.3))
    return s


def _lamp(rng: np.random.Generator) -> Scene:
    s = Scene()
    base_kind = _pick(rng, {"disk": 0.4, "dome": 0.3, "body": 0.3})
    br = rng.uniform(0.1, 0.2)
    if base_kind == "disk":
        bh = rng.uniform(0.03, 0.07)
        s.add(cylinder((0, 0, 0.5 * bh), br, bh, 0.5 * bh * rng.uniform(0.3, 1.0)))
    elif base_kind == "dome":
        bh = rng.uniform(0.05, 0.12)
        s.add(lathe((0, 0, 0), [0.0, 0.3 * bh, bh], [br, br * 0.85, br * 0.25]))
    else:
        bh = rng.uniform(0.2, 0.45)
        mid = rng.uniform(0.1, 0.2)
        s.add(lathe((0, 0, 0), [0.0, 0.1 * bh, 0.5 * bh, 0.9 * bh, bh],
                    [0.6 * mid, mid * 0.9, mid * rng.uniform(1.0, 1.4), 0.4 * mid, 0.3 * mid]))
    stem_r = rng.uniform(0.016, 0.03)
    if rng.random() < 0.25:   # desk lamp: two arm segments and a tilted cone shade
        turn = rng.normal(0, 0.3)
        up_back = rot_z(turn) @ np.array([0, math.sin(0.4), math.cos(0.4)])
        out_front = rot_z(turn) @ np.array([0, -math.cos(0.5), math.sin(0.5)])
        elbow = np.array([0, 0, bh]) + rng.uniform(0.3, 0.5) * up_back
        head = elbow + rng.uniform(0.3, 0.45) * out_front
        s.add(capsule((0, 0, bh - 0.01), elbow, stem_r))
        s.add(capsule(elbow, head, stem_r))
        s.add(sphere(elbow, stem_r * 1.6))
        aim = rot_z(turn) @ np.array([0, -rng.uniform(0.2, 0.8), -1.0])
        rot = _frame_z(-aim)
        hs = rng.uniform(0.12, 0.2)
        rw, rn = rng.uniform(0.08, 0.14), rng.uniform(0.03, 0.05)
        wide = head + hs * aim / np.linalg.norm(aim)
        s.add(lathe(wide, [0.0, 0.5 * hs, hs], [rw, 0.5 * (rw + rn) * 0.9, rn], rot))
        s.cut(lathe(wide, [-0.05, 0.7 * hs], [rw - 0.03, rn * 0.5], rot))
        return s
    top = bh + rng.uniform(0.35, 0.7)
    hs = rng.uniform(0.15, 0.35)
    rb = rng.uniform(0.14, 0.3)
    rt = rb * rng.uniform(0.4, 1.0)
    th = 0.03
    z0 = top - hs * rng.uniform(0.4, 0.8)
    closed_top = rng.random() < 0.4
    if closed_top:
        top = z0 + hs - 0.5 * th
    s.add(lathe((0, 0, z0), [0.0, hs], [rb, rt]))
    slope = (rt - rb) / hs
    z1 = hs - th if closed_top else hs + 0.05
    s.cut(lathe((0, 0, z0), [-0.05, z1], [rb - th - 0.05 * slope, rb - th + z1 * slope]))
    if not closed_top:
        for k in range(3):
            a = 2 * math.pi * k / 3
            s.add(capsule((0, 0, top), ((rt - 0.5 * th) * math.cos(a), (rt - 0.5 * th) * math.sin(a), z0 + hs - 0.02),
                          0.014))
    s.add(capsule((0, 0, bh - 0.01), (0, 0, top), stem_r), blend=0.02)
    s.add(sphere((0, 0, top), rng.uniform(0.03, 0.06)))
    return s


def _mug(rng: np.random.Generator) -> Scene:
    """Mugs, teacups and tumblers: straight, tapered, flared or bellied bodies hollowed
    from the top, with 0-2 handles of varying size and squareness, optional rim bead and
    saucer."""
    s = Scene()
    h = rng.uniform(0.5, 1.2)
    rb = rng.uniform(0.3, 0.5)
    rt = rb * (rng.uniform(1.1, 1.6) if h < 0.7 and rng.random() < 0.5 else rng.uniform(0.85, 1.2))
    mid = 0.5 * (rb + rt) * (rng.uniform(1.0, 1.2) if rng.random() < 0.3 else 1.0)
    heights = [0.0, 0.03, 0.5 * h, h]
    radii = [rb * 0.92, rb, mid, rt]
    profile = PchipInterpolator(heights, radii)
    s.add(lathe((0, 0, 0), heights, radii))
    wall = rng.uniform(0.05, 0.08)
    if rng.random() < 0.4:
        s.add(torus((0, 0, h), rt - 0.5 * wall, 0.6 * wall))

    handles = _pick(rng, {"none": 0.2, "one": 0.7, "two": 0.1})
    if handles != "none":
        a = rng.uniform(0.12, 0.3)
        b = min(rng.uniform(0.15, 0.42) * h, 0.42 * h)
        p = rng.uniform(0.35, 1.0)
        zc = h * rng.uniform(0.45, 0.58)
        r = rng.uniform(0.035, 0.055)
        x0 = float(profile(zc)) - 0.5 * wall
        phi = (math.pi if rng.random() < 0.5 else 0.0) + rng.normal(0, 0.25) if rng.random() < 0.7 \
            else rng.uniform(0, 2 * math.pi)
        t = np.linspace(0.0, math.pi, 13)
        pts = np.stack([x0 + a * np.abs(np.sin(t)) ** p, np.zeros_like(t),
                        zc + b * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** p], axis=1)
        for angle in ([phi] if handles == "one" else [phi, phi + math.pi]):
            turned = pts @ rot_z(angle).T
            for k in range(len(t) - 1):
                ends = k in (0, len(t) - 2)
                s.add(capsule(turned[k], turned[k + 1], r), blend=0.02 if ends else 0.0)
    if handles != "none" and h < 0.9 and rng.random() < 0.25:
        rs = rb * rng.uniform(1.6, 2.0)
        s.add(lathe((0, 0, -0.06), [0.0, 0.03, 0.06], [rb * 0.8, rs, rs]), blend=0.03)
    _hollow(s, profile, wall, rng.uniform(0.06, 0.14), h)
    return s


def _car(rng: np.random.Generator) -> Scene:
    """Sedans, hatchbacks, SUVs, pickups (open bed) and sports cars: body and cabin side
    profiles, wheel size, wheelbase, arches, optional spoiler and mirrors, sometimes
    steered front wheels. Front towards -Y."""
    s = Scene()
    kind = _pick(rng, {"sedan": 0.3, "hatch": 0.2, "suv": 0.2, "pickup": 0.15, "sports": 0.15})
    width = rng.uniform(0.36, 0.46)
    gc = rng.uniform(0.035, 0.07)
    if kind == "sports":
        hb = rng.uniform(0.1, 0.14)
    else:
        hb = rng.uniform(0.13, 0.2) * (1.2 if kind in ("suv", "pickup") else 1.0)
    wr = min(rng.uniform(0.075, 0.11), gc + 0.7 * hb)
    ww = rng.uniform(0.05, 0.08)
    wheelbase = rng.uniform(0.56, 0.66)
    side = axes((0, 1, 0), (0, 0, 1))     # local (x, y, z) = world (Y, Z, X)
    top = gc + hb
    nose = rng.uniform(0.03, 0.12)
    body = [(-0.5 + 0.04, gc), (0.5 - 0.04, gc), (0.5, gc + 0.3 * hb), (0.5, top - 0.2 * hb), (0.5 - 0.04, top),
            (-0.5 + nose, top), (-0.5, gc + rng.uniform(0.4, 0.7) * hb), (-0.5, gc + 0.3 * hb)]
    s.add(prism(body, width, rng.uniform(0.03, 0.06), rotation=side))

    if kind == "sedan":
        ya = rng.uniform(-0.25, -0.15); yc = ya + rng.uniform(0.12, 0.2)
        yd = rng.uniform(0.12, 0.22); yb = rng.uniform(0.3, 0.38); hc = rng.uniform(0.11, 0.15)
    elif kind == "hatch":
        ya = rng.uniform(-0.25, -0.15); yc = ya + rng.uniform(0.12, 0.2)
        yd = rng.uniform(0.36, 0.43); yb = 0.47; hc = rng.uniform(0.12, 0.16)
    elif kind == "suv":
        ya = rng.uniform(-0.3, -0.22); yc = ya + rng.uniform(0.08, 0.14)
        yd = rng.uniform(0.4, 0.45); yb = 0.48; hc = rng.uniform(0.15, 0.2)
    elif kind == "pickup":
        ya = rng.uniform(-0.22, -0.12); yc = ya + rng.uniform(0.08, 0.12)
        yd = rng.uniform(0.0, 0.1); yb = yd + 0.02; hc = rng.uniform(0.13, 0.18)
    else:
        ya = rng.uniform(-0.2, -0.1); yc = ya + rng.uniform(0.2, 0.28)
        yd = rng.uniform(0.12, 0.25); yb = yd + rng.uniform(0.1, 0.18); hc = rng.uniform(0.08, 0.11)
    cabin_w = width * rng.uniform(0.78, 0.92)
    cabin = [(ya, top - 0.03), (yb, top - 0.03), (yd, top + hc), (yc, top + hc)]
    s.add(prism(cabin, cabin_w, rng.uniform(0.02, 0.045), rotation=side), blend=0.02)
    if kind == "pickup":
        y0 = yb + 0.04
        s.cut(box((0, 0.5 * (y0 + 0.47), top), (width - 0.05, 0.47 - y0, hb), 0.01))
    if kind in ("sedan", "sports") and rng.random() < 0.25:
        s.add(box((0, 0.45, top + 0.06), (width * 0.9, 0.06, 0.02), 0.008))
        for sx in (-1, 1):
            s.add(box((sx * 0.3 * width, 0.45, top + 0.03), (0.02, 0.03, 0.06), 0.005))
    if rng.random() < 0.5:
        for sx in (-1, 1):
            s.add(ellipsoid((sx * 0.5 * cabin_w, ya + 0.04, top + 0.015), (0.035, 0.02, 0.022)), blend=0.01)

    y_front = -0.5 * wheelbase + rng.uniform(-0.04, 0.04)
    steer = rng.uniform(-0.4, 0.4) if rng.random() < 0.3 else 0.0
    axle = axes((0, 1, 0), (0, 0, 1))     # local z = world X
    for y in (y_front, y_front + wheelbase):
        for sx in (-1, 1):
            s.cut(cylinder((sx * 0.5 * width, y, wr), wr * 1.15, 1.6 * ww, rotation=axle), blend=0.01)
    for y, turn in ((y_front, steer), (y_front + wheelbase, 0.0)):
        for sx in (-1, 1):
            s.add(cylinder((sx * (0.5 * width - 0.45 * ww), y, wr), wr, ww, 0.25 * ww, rot_z(turn) @ axle))
    return s


def _random_primitive(rng: np.random.Generator, centre: Array, size: float) -> Primitive:
    """One rounded primitive of about ``size`` at ``centre``, randomly turned."""
    turn = rot_z(rng.uniform(0, 2 * math.pi)) @ rot_x(rng.uniform(-0.6, 0.6))
    kind = _pick(rng, {"ellipsoid": 0.3, "capsule": 0.2, "box": 0.2, "torus": 0.1, "cone": 0.1, "cylinder": 0.1})
    if kind == "ellipsoid":
        return ellipsoid(centre, size * rng.uniform(0.35, 1.0, 3), turn)
    if kind == "capsule":
        half = turn @ np.array([0.0, 0.0, size * rng.uniform(0.4, 1.0)])
        r = size * rng.uniform(0.12, 0.35)
        return capsule(centre - half, centre + half, r, r * rng.uniform(0.5, 1.3))
    if kind == "box":
        dims = size * rng.uniform(0.5, 1.6, 3)
        return box(centre, dims, rng.uniform(0.02, 0.3) * dims.min(), turn)
    if kind == "torus":
        major = size * rng.uniform(0.45, 0.8)
        return torus(centre, major, major * rng.uniform(0.18, 0.4), turn)
    if kind == "cone":
        h = size * rng.uniform(0.8, 1.6)
        return lathe(centre - np.array([0, 0, 0.5 * h]), [0.0, 0.02, h], [size * 0.5, size * rng.uniform(0.4, 0.7),
                                                                          size * rng.uniform(0.05, 0.2)], turn)
    return cylinder(centre, size * rng.uniform(0.25, 0.6), size * rng.uniform(0.6, 1.6), size * 0.05, turn)


def _assembly(rng: np.random.Generator) -> Scene:
    """Random part assemblies, a general prior rather than a category: 2-7 rounded
    primitives (ellipsoids, capsules, rounded boxes, tori, cones, cylinders) joined with
    smooth or sharp unions, some mirrored left-right, with cuts that make cavities,
    notches and through-holes. Parts are placed around the first one and may float
    apart from it, as the pieces of some sketched objects do."""
    s = Scene()
    size = rng.uniform(0.3, 0.55)
    body = rng.normal(0, 0.05, 3)
    s.add(_random_primitive(rng, body, size))
    symmetric = rng.random() < 0.5
    for _ in range(int(rng.integers(1, 7))):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        centre = body + direction * size * rng.uniform(0.5, 1.3)
        part_size = size * rng.uniform(0.3, 0.9)
        blend = rng.uniform(0.0, 0.08) if rng.random() < 0.7 else 0.0
        if symmetric and abs(centre[0]) > 0.1 * size:
            seed = int(rng.integers(1 << 30))
            for sx in (-1.0, 1.0):   # both sides get the same part, placed mirrored
                s.add(_random_primitive(np.random.default_rng(seed), centre * np.array([sx, 1.0, 1.0]), part_size),
                      blend)
        else:
            s.add(_random_primitive(rng, centre, part_size), blend)
    lo, hi = s.bounds()
    for _ in range(int(rng.integers(0, 3))):
        kind = _pick(rng, {"cavity": 0.4, "hole": 0.4, "notch": 0.2})
        centre = lo + (hi - lo) * rng.uniform(0.25, 0.75, 3)
        extent = float((hi - lo).min())
        if kind == "hole":
            axis = [rot_x(math.pi / 2), rot_y(math.pi / 2), np.eye(3)][int(rng.integers(3))]
            s.cut(cylinder(centre, extent * rng.uniform(0.1, 0.25), 4.0, 0.0, axis), rng.uniform(0.0, 0.03))
        elif kind == "cavity":
            top = centre.copy()
            top[2] = hi[2]
            s.cut(ellipsoid(top, extent * rng.uniform(0.2, 0.4, 3)), rng.uniform(0.0, 0.03))
        else:
            s.cut(box(centre + rng.normal(0, 0.2, 3) * extent, extent * rng.uniform(0.3, 0.6, 3), 0.02,
                      rot_z(rng.uniform(0, math.pi))), 0.01)
    return s


_BUILDERS: dict[str, Callable[[np.random.Generator], Scene]] = {
    "chair": _chair,
    "table": _table,
    "airplane": _airplane,
    "quadruped": _quadruped,
    "humanoid": _humanoid,
    "lathe": _lathe_object,
    "mug": _mug,
    "car": _car,
    "assembly": _assembly,
}

FAMILIES: tuple[str, ...] = tuple(_BUILDERS)


def make_shape(family: str, rng: np.random.Generator, grid: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A random member of ``family``: (vertices float32 (V,3), faces int32 (F,3)), watertight,
    outward, in the canonical frame (centred, largest extent 1.7, Z up, front towards -Y).

    ``grid`` is the number of field samples along the shape's longest side. The same
    generator state gives the same mesh."""
    if family not in _BUILDERS:
        raise ValueError(f"unknown shape family {family!r}; choose from {', '.join(FAMILIES)}")
    scene = _BUILDERS[family](rng)
    yaw = rng.normal(0.0, 0.08) if rng.random() < 0.9 else rng.uniform(-0.45, 0.45)
    vertices, faces = scene.mesh(grid)
    vertices = canonical_vertices(vertices @ (rot_z(yaw) @ scene.tilt).T)
    return vertices.astype(np.float32), faces.astype(np.int32)

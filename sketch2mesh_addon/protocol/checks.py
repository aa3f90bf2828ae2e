"""The sketch and mesh payloads: packed for the wire, unpacked and checked on arrival, with
refusals worded as sentences a user can act on; and the fit report, worded once for the
add-on's panel and messages and the server's command line.
"""

from __future__ import annotations

import numpy as np

from .framing import ProtocolError
from .vocabulary import MAIN_VIEWS, MAX_FIT_FACES, MAX_MESH_VERTICES, MAX_POINTS, MAX_STROKES, VIEW_NAMES


def pack_strokes(view: str, strokes: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Pack one view's strokes, each an (N, 2) array of view-plane points, optionally
    with a third column of pressure, into ``<view>.points`` (N, 2) float32,
    ``<view>.pressure`` (N,) float32 and ``<view>.offsets`` (S + 1,) int32."""
    pts, pressure, offsets = [], [], [0]
    for stroke in strokes:
        s = np.asarray(stroke, dtype=np.float32).reshape(len(stroke), -1)
        pts.append(s[:, :2])
        pressure.append(s[:, 2] if s.shape[1] > 2 else np.ones(len(s), np.float32))
        offsets.append(offsets[-1] + len(s))
    points = np.concatenate(pts) if pts else np.zeros((0, 2), np.float32)
    press = np.concatenate(pressure) if pressure else np.zeros(0, np.float32)
    return {f"{view}.points": points, f"{view}.pressure": press, f"{view}.offsets": np.asarray(offsets, np.int32)}


def unpack_strokes(arrays: dict[str, np.ndarray], max_strokes: int = MAX_STROKES,
                   max_points: int = MAX_POINTS) -> dict[str, list[np.ndarray]]:
    """Inverse of :func:`pack_strokes` for every view present: view -> list of (N, 3)
    arrays of (u, v, pressure). Validates structure and size, not content (see
    :func:`check_strokes`); the sizes are checked before anything is copied."""
    present = [view for view in VIEW_NAMES if f"{view}.points" in arrays]
    strokes = sum(max(len(arrays.get(f"{view}.offsets", ())) - 1, 0) for view in present)
    points = sum(len(arrays[f"{view}.points"]) for view in present)
    _check_counts(strokes, points, max_strokes, max_points)
    out: dict[str, list[np.ndarray]] = {}
    for view in present:
        points = arrays[f"{view}.points"]
        offsets = arrays.get(f"{view}.offsets")
        pressure = arrays.get(f"{view}.pressure", np.ones(len(points), np.float32))
        if points.ndim != 2 or points.shape[1] != 2:
            raise ProtocolError("bad_input", f"{view}.points must have shape (N, 2)")
        if offsets is None or offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype.kind not in "iu":
            raise ProtocolError("bad_input", f"{view}.offsets must be a 1-D integer array")
        offsets = offsets.astype(np.int64)
        if offsets[0] != 0 or offsets[-1] != len(points) or np.any(np.diff(offsets) < 0):
            raise ProtocolError("bad_input", f"{view}.offsets must rise from 0 to the point count")
        if pressure.shape != (len(points),):
            raise ProtocolError("bad_input", f"{view}.pressure must have one value per point")
        merged = np.concatenate([points.astype(np.float32), pressure.astype(np.float32)[:, None]], axis=1)
        out[view] = [merged[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    return out


def _check_counts(strokes: int, points: int, max_strokes: int, max_points: int) -> None:
    if strokes > max_strokes:
        raise ProtocolError("bad_input", f"The sketch has {strokes} strokes, more than the {max_strokes} allowed; "
                                         "join or delete strokes.")
    if points > max_points:
        raise ProtocolError("bad_input", f"The sketch has {points} points, more than the {max_points} allowed; simplify the strokes.")


def check_strokes(strokes: dict[str, list[np.ndarray]], max_strokes: int = MAX_STROKES,
                  max_points: int = MAX_POINTS) -> None:
    """Reject sketches that cannot be reconstructed, with a sentence the user can act on.

    ``strokes`` maps a view name to its strokes, each an (N, 2+) array. Front or side
    alone is accepted (the server inflates it); the top view alone is not."""
    unknown = set(strokes) - set(VIEW_NAMES)
    if unknown:
        raise ProtocolError("bad_input", f"unknown view(s) {', '.join(sorted(unknown))}; expected front, side, top")
    drawn = [v for v in VIEW_NAMES if any(len(s) for s in strokes.get(v, []))]
    if not any(v in drawn for v in MAIN_VIEWS):
        where = "draw the object's outline on the Front layer, the Side layer or both"
        if drawn:
            raise ProtocolError("bad_input", f"Only the top view is drawn: {where}; the top view only adds to them.")
        raise ProtocolError("bad_input", f"The sketch is empty: {where}.")
    _check_counts(sum(len(strokes[v]) for v in strokes), sum(len(s) for v in strokes for s in strokes[v]),
                  max_strokes, max_points)
    for view in drawn:
        for stroke in strokes[view]:
            s = np.asarray(stroke)
            if s.size and not np.all(np.isfinite(s)):
                raise ProtocolError("bad_input", f"A {view} stroke has invalid (NaN or infinite) coordinates; redraw or delete it.")
        usable = [s for s in strokes[view] if len(s) >= 2]
        if not usable:
            raise ProtocolError("bad_input", f"The {view} view has only single-point strokes; draw lines, not dots.")
        pts = np.concatenate([np.asarray(s)[:, :2] for s in usable])
        if np.ptp(pts[:, 0]) <= 0 or np.ptp(pts[:, 1]) <= 0:
            raise ProtocolError("bad_input", f"The {view} strokes are a single straight line; draw the object's outline.")


def pack_mesh(vertices: np.ndarray, faces: np.ndarray) -> dict[str, np.ndarray]:
    """``mesh.vertices`` (V, 3) float32 world positions and ``mesh.faces`` (F, 3) int32."""
    return {"mesh.vertices": np.ascontiguousarray(vertices, np.float32).reshape(-1, 3),
            "mesh.faces": np.ascontiguousarray(faces, np.int32).reshape(-1, 3)}


def unpack_mesh(arrays: dict[str, np.ndarray], max_faces: int = MAX_FIT_FACES) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_mesh`, validated with :func:`check_mesh` (sizes before any copy)."""
    vertices, faces = arrays.get("mesh.vertices"), arrays.get("mesh.faces")
    if vertices is None or faces is None:
        raise ProtocolError("bad_input", "A fit request needs the arrays mesh.vertices and mesh.faces.")
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu":
        raise ProtocolError("bad_input", "mesh.vertices must be (V, 3) floats and mesh.faces (F, 3) integers.")
    _check_mesh_size(len(vertices), len(faces), max_faces)
    vertices, faces = vertices.astype(np.float32), faces.astype(np.int64)
    check_mesh(vertices, faces, max_faces)
    return vertices, faces


def _check_mesh_size(vertices: int, faces: int, max_faces: int) -> None:
    if faces < 4 or vertices < 4:
        raise ProtocolError("bad_input", "The mesh has no volume to fit (fewer than 4 faces); pick a closed mesh.")
    if vertices > MAX_MESH_VERTICES:
        raise ProtocolError("bad_input", f"The mesh has {vertices} vertices, more than the {MAX_MESH_VERTICES} "
                                         "Fit to strokes handles; decimate it first.")
    if faces > max_faces:
        raise ProtocolError("bad_input", f"The mesh has {faces} triangles, more than the {max_faces} faces Fit to "
                                         "strokes takes; decimate it first (Modifiers > Decimate).")


def check_mesh(vertices: np.ndarray, faces: np.ndarray, max_faces: int = MAX_FIT_FACES) -> None:
    """Reject meshes that cannot be fitted, with a sentence the user can act on."""
    _check_mesh_size(len(vertices), len(faces), max_faces)
    if not np.all(np.isfinite(vertices)):
        raise ProtocolError("bad_input", "The mesh has invalid (NaN or infinite) vertex positions.")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ProtocolError("bad_input", "The mesh's faces refer to vertices it does not have.")


def mesh_defects(faces: np.ndarray) -> str | None:
    """A warning sentence when the mesh is not closed and manifold (every edge on exactly
    two faces), else None. Fitting still runs: open edges simply count as outline."""
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return mesh_warning(int((counts == 1).sum()), int((counts > 2).sum()))


def mesh_warning(open_edges: int, shared: int) -> str | None:
    """The warning for a mesh with ``open_edges`` edges on one face and ``shared`` on more
    than two, or None when it has neither. Each side counts with its own code (the add-on
    here, the server with its geometry); the sentence is this one."""
    if not open_edges and not shared:
        return None
    parts = ([f"{open_edges} open edge(s)"] if open_edges else []) + (
        [f"{shared} edge(s) on more than two faces"] if shared else [])
    return (f"The mesh is not closed and manifold ({', '.join(parts)}); the fit may tear or fold there. "
            "Use Mesh > Clean Up or a remesh first for best results.")


def fit_report(fit: dict) -> list[str]:
    """A fit summary (the ``fit`` entry of a result) worded as two lines: the silhouette
    IoUs per view, before -> after, then what the fit did ('0 flipped faces, 87 iterations',
    or that the mesh already matched and nothing moved)."""
    before, after = dict(fit.get("iou_before") or {}), dict(fit.get("iou_after") or {})
    ious = ", ".join(f"{view} {float(before[view]):.3f} -> {float(after.get(view, 0.0)):.3f}" for view in before)
    if fit.get("already_matched"):
        outcome = "the mesh already matches the strokes as closely as a drawing can tell, so nothing was moved"
    else:
        outcome = f"{int(fit.get('flipped_faces', 0))} flipped faces, {int(fit.get('iterations', 0))} iterations"
    return [f"silhouette IoU {ious or 'not measured'}", outcome]


def describe_fit(fit: dict) -> str:
    """:func:`fit_report` in one line: 'silhouette IoU front 0.912 -> 0.991, side ...; 0
    flipped faces, 87 iterations'."""
    return "; ".join(fit_report(fit))

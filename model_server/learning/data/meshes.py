"""Users' mesh collections: find, load and normalise mesh files into the canonical frame.

Reads OBJ, PLY, OFF, STL, GLB and glTF with open3d. A mesh is rotated so its up axis
becomes +Z (``up="y"`` is a +90° turn about X, as for the evaluation meshes), its
bounding box is centred on the origin and its largest extent scaled to
:data:`model_server.geometry.normalize.TARGET_EXTENT`. Coincident vertices are merged so vertex
normals come out smooth across UV seams.

A file that cannot be read, or holds no triangles, raises :class:`MeshError`;
:func:`iter_meshes` turns that into a :class:`MeshWarning` and moves on, so one broken
file never ends a run over a folder.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from model_server.geometry.normalize import TARGET_EXTENT, canonical_vertices

MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl", ".glb", ".gltf")
UP_AXES = ("z", "y", "x")

# Rotations taking each up axis to +Z (applied as vertices @ R.T).
_TO_Z_UP: dict[str, np.ndarray] = {
    "z": np.eye(3),
    "y": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),   # +90° about X: y -> z
    "x": np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),   # -90° about Y: x -> z
}


class MeshError(ValueError):
    """A mesh file that cannot be used: unreadable, empty or degenerate."""


class MeshWarning(UserWarning):
    """A mesh file was skipped."""


def find_meshes(folder: str | Path) -> list[Path]:
    """Every mesh file under ``folder`` (recursively), sorted by path, so indices are stable."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"mesh folder {folder} does not exist")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and p.is_file())


def up_rotation(up: str) -> np.ndarray:
    """The 3x3 rotation taking the ``up`` axis ('z', 'y' or 'x') to +Z."""
    if up not in _TO_Z_UP:
        raise ValueError(f"up axis must be one of {', '.join(UP_AXES)}, not {up!r}")
    return _TO_Z_UP[up]


def normalize_vertices(vertices: np.ndarray, target_extent: float = TARGET_EXTENT) -> np.ndarray:
    """Centre the bounding box on the origin and scale its largest side to ``target_extent``."""
    try:
        return canonical_vertices(vertices, target_extent)
    except ValueError as exc:
        raise MeshError(str(exc)) from None


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and faces (F, 3) int64 of a mesh file, as stored (no normalisation).

    Raises MeshError for unsupported, unreadable or empty files."""
    import open3d as o3d

    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise MeshError(f"{path}: unsupported mesh format; use one of {', '.join(MESH_SUFFIXES)}")
    if not path.is_file():
        raise MeshError(f"{path}: no such file")
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh = o3d.io.read_triangle_mesh(str(path), enable_post_processing=False, print_progress=False)
        if not mesh.has_triangles() and path.suffix.lower() in (".glb", ".gltf"):
            mesh = _merged_model(o3d.io.read_triangle_model(str(path)))
    vertices = np.asarray(mesh.vertices, np.float64)
    faces = np.asarray(mesh.triangles, np.int64)
    if len(faces) == 0 or len(vertices) == 0:
        raise MeshError(f"{path}: no triangles (empty, corrupt or unreadable file)")
    if not np.isfinite(vertices).all():
        raise MeshError(f"{path}: vertex coordinates are not all finite")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshError(f"{path}: face indices out of range")
    try:
        return _merge_duplicates(vertices, faces)
    except MeshError as exc:
        raise MeshError(f"{path}: {exc}") from None


def _merged_model(model) -> "object":
    """One TriangleMesh from all meshes of an open3d TriangleMeshModel."""
    import open3d as o3d

    merged = o3d.geometry.TriangleMesh()
    for info in model.meshes:
        merged += info.mesh
    return merged


def _merge_duplicates(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge coincident vertices, drop degenerate faces and unused vertices."""
    unique, inverse = np.unique(vertices, axis=0, return_inverse=True)
    f = inverse.reshape(-1)[faces]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    if len(f) == 0:
        raise MeshError("every triangle is degenerate")
    used, remap = np.unique(f, return_inverse=True)
    return unique[used], remap.reshape(f.shape)


def load_mesh(path: str | Path, up: str = "z") -> tuple[np.ndarray, np.ndarray]:
    """A mesh file in the canonical frame: vertices (V, 3) float32, faces (F, 3) int32.

    Raises MeshError if the file cannot be used."""
    rotation = up_rotation(up)
    vertices, faces = read_mesh(path)
    try:
        canonical = normalize_vertices(vertices @ rotation.T)
    except MeshError as exc:
        raise MeshError(f"{path}: {exc}") from None
    return canonical.astype(np.float32), faces.astype(np.int32)


def iter_meshes(folder: str | Path, up: str = "z") -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """(path, vertices, faces) of every usable mesh under ``folder``; broken ones are skipped
    with a MeshWarning."""
    for path in find_meshes(folder):
        try:
            vertices, faces = load_mesh(path, up)
        except MeshError as exc:
            warnings.warn(f"skipping mesh {exc}", MeshWarning, stacklevel=2)
            continue
        yield path, vertices, faces

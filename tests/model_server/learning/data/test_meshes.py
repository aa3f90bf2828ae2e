"""Users' mesh files: every format loads into the canonical frame, up axes turn the right
way, and broken files are skipped with a warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest

from model_server.geometry import mesh_io
from model_server.learning.data import meshes
from model_server.geometry.normalize import TARGET_EXTENT

EVAL_MESHES = Path(__file__).resolve().parents[4].parent / "shared" / "eval-meshes"


def box(size=(1.0, 2.0, 4.0), centre=(3.0, -1.0, 0.5)) -> o3d.geometry.TriangleMesh:
    """An off-centre box with sides ``size`` (long along Z by default)."""
    mesh = o3d.geometry.TriangleMesh.create_box(*size)
    mesh.translate(np.asarray(centre) - 0.5 * np.asarray(size))
    mesh.compute_vertex_normals()
    return mesh


def write_box(path: Path, mesh: o3d.geometry.TriangleMesh | None = None) -> Path:
    mesh = mesh or box()
    if path.suffix == ".glb":
        mesh_io.write_glb(path, np.asarray(mesh.vertices, np.float32), np.asarray(mesh.triangles))
    else:
        assert o3d.io.write_triangle_mesh(str(path), mesh, write_ascii=path.suffix == ".obj")
    return path


def extent(vertices: np.ndarray) -> np.ndarray:
    return vertices.max(axis=0) - vertices.min(axis=0)


@pytest.mark.parametrize("suffix", meshes.MESH_SUFFIXES)
def test_every_format_loads_into_the_canonical_frame(tmp_path, suffix):
    vertices, faces = meshes.load_mesh(write_box(tmp_path / f"box{suffix}"))
    assert vertices.dtype == np.float32 and faces.dtype == np.int32
    assert len(vertices) == 8 and len(faces) == 12      # split corners of STL/glTF are merged
    np.testing.assert_allclose(extent(vertices), np.array([1.0, 2.0, 4.0]) * TARGET_EXTENT / 4.0, atol=1e-5)
    np.testing.assert_allclose(vertices.min(axis=0), -vertices.max(axis=0), atol=1e-5)


@pytest.mark.parametrize("up, long_axis", [("z", 2), ("y", 1), ("x", 0)])
def test_up_axis_becomes_z(tmp_path, up, long_axis):
    """A box that is long along the file's up axis stands tall along Z."""
    size = [0.5, 0.5, 0.5]
    size[long_axis] = 2.0
    vertices, _ = meshes.load_mesh(write_box(tmp_path / "box.ply", box(tuple(size))), up)
    np.testing.assert_allclose(extent(vertices), [0.425, 0.425, TARGET_EXTENT], atol=1e-5)


def test_y_up_is_a_quarter_turn_about_x():
    """As the evaluation meshes' README says: +Y goes to +Z (and +Z to -Y)."""
    rotation = meshes.up_rotation("y")
    np.testing.assert_allclose(rotation @ [0, 1, 0], [0, 0, 1])
    np.testing.assert_allclose(rotation @ [0, 0, 1], [0, -1, 0])
    np.testing.assert_allclose(np.linalg.det(meshes.up_rotation("x")), 1.0)
    with pytest.raises(ValueError):
        meshes.up_rotation("w")


def broken_files(folder: Path) -> list[Path]:
    """Mesh files that cannot be used: truncated, empty, garbage, and triangle-free."""
    contents = {"truncated.obj": b"v 0 0 0\nv 1 0\nf 1 2 7\n", "empty.ply": b"",
                "noise.glb": b"glTF" + bytes(range(60)), "points.off": b"OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n"}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in contents]


def test_broken_files_raise_mesh_error(tmp_path):
    for path in broken_files(tmp_path):
        with pytest.raises(meshes.MeshError, match=path.name):
            meshes.load_mesh(path)
    with pytest.raises(meshes.MeshError):
        meshes.load_mesh(tmp_path / "missing.stl")


def test_iter_meshes_skips_broken_files_with_a_warning(tmp_path):
    nested = tmp_path / "category" / "model"
    nested.mkdir(parents=True)
    write_box(nested / "good.obj")
    write_box(tmp_path / "good.stl")
    broken = broken_files(tmp_path)
    (tmp_path / "notes.txt").write_text("not a mesh")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = list(meshes.iter_meshes(tmp_path))
    assert sorted(p.name for p, _, _ in loaded) == ["good.obj", "good.stl"]
    skipped = [str(w.message) for w in caught if issubclass(w.category, meshes.MeshWarning)]
    assert len(skipped) == len(broken)
    assert all(any(path.name in message for message in skipped) for path in broken)


def test_find_meshes_is_recursive_and_sorted(tmp_path):
    for name in ("b/z.ply", "a/y.OBJ", "c.glb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "readme.md").write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in meshes.find_meshes(tmp_path)] == ["a/y.OBJ", "b/z.ply", "c.glb"]
    with pytest.raises(ValueError, match="does not exist"):
        meshes.find_meshes(tmp_path / "nowhere")


@pytest.mark.skipif(not EVAL_MESHES.is_dir(), reason="evaluation meshes not present")
def test_evaluation_meshes_load_upright():
    """The shared evaluation meshes (Y up) load with --up y; loading only, never training."""
    for path, vertices, faces in meshes.iter_meshes(EVAL_MESHES, "y"):
        assert np.isfinite(vertices).all() and len(faces) > 500, path.name
        assert extent(vertices).max() == pytest.approx(TARGET_EXTENT, abs=1e-4)
    vertices, _ = meshes.load_mesh(EVAL_MESHES / "homer.obj", "y")
    assert np.argmax(extent(vertices)) == 2          # a standing figure is tallest along Z

"""The dataset generator: files in the format, consistent ground truth, determinism across
workers, resuming, broken meshes, family interleaving and the ``dataset`` command. Tiny datasets at 64²."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest

from model_server.__main__ import main as cli
from model_server.geometry import views
from model_server.geometry.mesh_io import write_mesh
from model_server.geometry.surface_nets import surface_nets
from model_server.learning.data import generate
from model_server.learning.data import meshes
from model_server.learning.data.format import load_shape, read_index, read_meta

RES = 64


def ellipsoid_file(path: Path, radii=(0.9, 0.6, 0.4), n: int = 40) -> Path:
    """A closed ellipsoid mesh (made with our surface nets) written to ``path``."""
    axis = np.linspace(-1.0, 1.0, n)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    field = np.sqrt((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2) - 1.0
    vertices, faces = surface_nets(field.astype(np.float32), -1.0, 2.0 / (n - 1))
    return write_mesh(path, vertices, faces)


@pytest.fixture(scope="module")
def mesh_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("meshes")
    ellipsoid_file(folder / "a_ellipsoid.ply")
    ellipsoid_file(folder / "b_disc.obj", (0.8, 0.8, 0.2))
    (folder / "c_broken.stl").write_bytes(b"solid nothing\nfacet normal 0 0")
    ellipsoid_file(folder / "d_tall.glb", (0.3, 0.3, 0.9))
    return folder


def make(out: Path, count: int | None = None, families=None, mesh_folder=None, seed: int = 5,
         workers: int = 1, res: int = RES) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", meshes.MeshWarning)
        plan = generate.make_plan(count, families, mesh_folder, "z", seed, res)
        return generate.generate(out, plan, workers, progress=False)


@pytest.fixture(scope="module")
def procedural(tmp_path_factory) -> Path:
    from model_server.learning.data import shapes

    out = tmp_path_factory.mktemp("procedural")
    make(out, 3, list(shapes.FAMILIES[:3]))
    return out


def test_files_follow_the_format(procedural):
    from model_server.learning.data import shapes

    meta = read_meta(procedural)
    assert meta == {"format": 1, "resolution": RES, "views": 14, "styles": ["clean", "sketchy", "suggestive"],
                    "sketch_views": ["front", "side", "top"], "seed": 5, "count": 3}
    index = read_index(procedural)
    assert [e["id"] for e in index] == ["000000", "000001", "000002"]
    assert [e["family"] for e in index] == list(shapes.FAMILIES[:3])
    assert all(e["source"] == "procedural" and e["file"] == f"shapes/{e['id']}.npz" for e in index)
    with np.load(procedural / index[0]["file"]) as data:
        assert {k: (data[k].dtype, data[k].shape[:-2] if k != "normal" else data[k].shape) for k in
                ("depth", "normal", "mask", "sketch")} == {
            "depth": (np.float16, (14,)), "normal": (np.int8, (14, RES, RES, 3)),
            "mask": (np.uint8, (14,)), "sketch": (np.uint8, (3, 3))}
        assert data["vertices"].dtype == np.float32 and data["faces"].dtype == np.int32


def test_ground_truth_lands_on_the_mesh(procedural):
    """Every foreground pixel, unprojected with its stored depth, lies on the stored mesh
    within a pixel; masks and normals agree with it."""
    for entry in read_index(procedural):
        shape = load_shape(procedural, entry)
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(shape["vertices"]), o3d.core.Tensor(shape["faces"].astype(np.uint32)))
        for i, view in enumerate(views.VIEWS):
            rows, cols = np.nonzero(shape["mask"][i])
            assert len(rows) > 20, (entry["id"], view.name)
            points = views.unproject(view, rows, cols, shape["depth"][i][rows, cols], RES)
            distance = scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()
            assert distance.max() < view.pixel_size(RES), (entry["id"], view.name)
            normals = shape["normal"][i][rows, cols]
            np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
            assert (normals[:, 2] >= 0).all()
            assert not shape["depth"][i][~shape["mask"][i]].any()


def test_sketches_outline_the_ground_truth_masks(procedural):
    """Front and side sketches of every style have ink around the front and side masks' extents."""
    for entry in read_index(procedural):
        shape = load_shape(procedural, entry)
        for view in (0, 1):
            mask_rows = np.flatnonzero(shape["mask"][view].any(axis=1))
            for style in range(len(generate.STYLES)):
                ink_rows = np.flatnonzero((shape["sketch"][style, view] > 0.5).any(axis=1))
                assert len(ink_rows) > 0
                assert abs(ink_rows[0] - mask_rows[0]) <= 2 and abs(ink_rows[-1] - mask_rows[-1]) <= 2


@pytest.mark.slow
def test_same_seed_same_arrays_whatever_the_workers(procedural, tmp_path):
    from model_server.learning.data import shapes

    make(tmp_path, 3, list(shapes.FAMILIES[:3]), workers=2)
    assert (tmp_path / "index.jsonl").read_text() == (procedural / "index.jsonl").read_text()
    for entry in read_index(procedural):
        with np.load(procedural / entry["file"]) as a, np.load(tmp_path / entry["file"]) as b:
            assert sorted(a.files) == sorted(b.files)
            for name in a.files:
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_shape_depends_only_on_seed_and_index(tmp_path, procedural):
    """Shape 2 made on its own (after shapes 0 and 1 exist) equals shape 2 of a full run;
    another seed gives other sketches."""
    from model_server.learning.data import shapes

    families = list(shapes.FAMILIES[:3])
    plan = generate.make_plan(3, families, None, "z", 5, RES)
    one = generate.make_sample(*generate.shape_geometry(plan, 2, generate.shape_rngs(5, 2)[0]), generate.shape_rngs(5, 2)[1], RES)
    with np.load(procedural / "shapes/000002.npz") as stored:
        for name, array in one.items():
            np.testing.assert_array_equal(stored[name], array, err_msg=name)
    other = generate.make_sample(*generate.shape_geometry(plan, 2, generate.shape_rngs(6, 2)[0]), generate.shape_rngs(6, 2)[1], RES)
    assert not np.array_equal(other["sketch"], one["sketch"])


def test_resume_skips_finished_shapes_and_repairs_the_index(tmp_path, mesh_folder):
    make(tmp_path, 2, mesh_folder=mesh_folder)
    first = tmp_path / "shapes/000000.npz"
    stamp = first.stat().st_mtime_ns
    # Simulate a run cut off mid-way: a lost shape file, a half-written index line, a stale temp file.
    (tmp_path / "shapes/000001.npz").unlink()
    with open(tmp_path / "index.jsonl", "a") as index:
        index.write('{"id": "0000')
    (tmp_path / "shapes/.000003.npz.999.tmp").write_bytes(b"partial")
    summary = make(tmp_path, 5, mesh_folder=mesh_folder)
    assert first.stat().st_mtime_ns == stamp
    assert summary["made"] == 3 and summary["skipped"] == 1      # 1, 3, 4 made; 2 is the broken file
    ids = [e["id"] for e in read_index(tmp_path)]
    assert ids == ["000000", "000001", "000003", "000004"]
    lines = (tmp_path / "index.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids
    assert read_meta(tmp_path)["count"] == 4
    assert not list((tmp_path / "shapes").glob(".*"))


def test_resume_refuses_other_settings(tmp_path, mesh_folder):
    make(tmp_path, 1, mesh_folder=mesh_folder)
    with pytest.raises(ValueError, match="seed"):
        make(tmp_path, 1, mesh_folder=mesh_folder, seed=6)
    with pytest.raises(ValueError, match="resolution"):
        make(tmp_path, 1, mesh_folder=mesh_folder, res=96)


def test_broken_mesh_is_skipped_with_a_warning(tmp_path, mesh_folder):
    plan = generate.make_plan(None, None, mesh_folder, "z", 0, RES)
    assert plan.count == 4 and plan.families == ("mesh",)
    with pytest.warns(meshes.MeshWarning, match="c_broken.stl"):
        summary = generate.generate(tmp_path, plan, 1, progress=False)
    assert summary["skipped"] == 1
    index = read_index(tmp_path)
    assert [Path(e["source"]).name for e in index] == ["a_ellipsoid.ply", "b_disc.obj", "d_tall.glb"]
    assert all(e["family"] == "mesh" for e in index)
    shape = load_shape(tmp_path, index[2])
    size = shape["vertices"].max(axis=0) - shape["vertices"].min(axis=0)
    assert size[2] == pytest.approx(1.7, abs=1e-3) and size[0] < 0.7     # the tall one stands up


def test_families_interleave_with_meshes(mesh_folder):
    from model_server.learning.data import shapes

    plan = generate.make_plan(9, [shapes.FAMILIES[1], shapes.FAMILIES[0]], mesh_folder, "z", 0, RES)
    assert [plan.entry(i)["family"] for i in range(6)] == [shapes.FAMILIES[1], shapes.FAMILIES[0], "mesh"] * 2
    sources = [Path(plan.entry(i)["source"]).name for i in (2, 5, 8)]
    assert sources == ["a_ellipsoid.ply", "b_disc.obj", "c_broken.stl"]
    with pytest.raises(ValueError, match="unknown shape family"):
        generate.make_plan(3, ["teapot"], None, "z", 0, RES)
    with pytest.raises(ValueError, match="--count"):
        generate.make_plan(None, None, None, "z", 0, RES)


def test_later_passes_over_meshes_are_variants(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    ellipsoid_file(folder / "e.ply")
    plan = generate.make_plan(2, None, folder, "z", 0, RES)
    first = generate.shape_geometry(plan, 0, generate.shape_rngs(0, 0)[0])[0]
    second = generate.shape_geometry(plan, 1, generate.shape_rngs(0, 1)[0])[0]
    assert not np.allclose(first, second)
    assert (second.max(axis=0) - second.min(axis=0)).max() == pytest.approx(1.7, abs=1e-4)


def test_cli_generates(tmp_path, mesh_folder, capsys):
    out = tmp_path / "data"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", meshes.MeshWarning)
        assert cli(["dataset", "--out", str(out), "--meshes", str(mesh_folder), "--workers", "1",
                    "--resolution", str(RES), "--seed", "3"]) == 0
    assert "shapes/s" in capsys.readouterr().out
    assert read_meta(out)["count"] == 3


def test_cli_reports_bad_settings(tmp_path, capsys):
    assert cli(["dataset", "--out", str(tmp_path / "d"), "--count", "2", "--families", "teapot"]) == 2
    assert "unknown shape family" in capsys.readouterr().err
    assert cli(["dataset", "--out", str(tmp_path / "d"), "--meshes", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "d").exists()

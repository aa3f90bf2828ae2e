"""The evaluation harness on a tiny dataset and a tiny mesh folder, through the real pipeline."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest

from model_server.errors import Refused
from model_server.evaluation import evaluate
from model_server.geometry import mesh_io
from model_server.learning.data import format as data_format
from model_server.learning.data import generate as dataset

RES = 128
METRIC_KEYS = [key for key, _, _ in evaluate.COLUMNS]


def sphere(radius: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius, resolution=40)
    return np.asarray(mesh.vertices, np.float32), np.asarray(mesh.triangles, np.int32)


def box(half=(0.5, 0.3, 0.85)) -> tuple[np.ndarray, np.ndarray]:
    mesh = o3d.geometry.TriangleMesh.create_box(*(2.0 * np.asarray(half)))
    return (np.asarray(mesh.vertices) - half).astype(np.float32), np.asarray(mesh.triangles, np.int32)


def write_dataset(folder: Path, shapes: dict[str, tuple], res: int = RES) -> Path:
    """A dataset written with the dataset module's own encoder, of chosen shapes and splits.
    ``shapes``: id -> (vertices, faces, split, blank); a blank shape's sketches are empty,
    which the pipeline cannot reconstruct."""
    (folder / "shapes").mkdir(parents=True)
    meta = {"format": data_format.FORMAT, "resolution": res, "views": 14, "styles": list(dataset.STYLES),
            "sketch_views": list(dataset.SKETCH_VIEWS), "seed": 0, "count": len(shapes)}
    (folder / "meta.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    with open(folder / "index.jsonl", "w") as index:
        for shape_id, (vertices, faces, split, blank) in shapes.items():
            arrays = dataset.make_sample(vertices, faces, rng, res)
            if blank:
                arrays["sketch"][:] = 0
            data_format.write_npz(folder / "shapes" / f"{shape_id}.npz", arrays)
            index.write(json.dumps({"id": shape_id, "family": "test", "source": "procedural", "split": split,
                                    "file": f"shapes/{shape_id}.npz"}) + "\n")
    return folder


def evaluate_cli(*argv: str) -> tuple[dict | None, str]:
    """Run the evaluate command in-process; the report (if written) and what it printed."""
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        evaluate.run(args)
    return json.loads(args.report.read_text()), out.getvalue()


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data") / "set", {
        "000000": (*sphere(), "test", False),
        "000001": (*box(), "test", False),
        "000002": (*sphere(), "test", True),
        "000003": (*box(), "train", False),
    })


@pytest.fixture(scope="module")
def dataset_report(tiny_dataset, tmp_path_factory) -> tuple[dict, str]:
    report = tmp_path_factory.mktemp("report") / "r.json"
    return evaluate_cli("--data", str(tiny_dataset), "--backend", "hull", "--detail", "low", "--report", str(report))


@pytest.fixture(scope="module")
def compared_report(tiny_dataset, tmp_path_factory) -> tuple[dict, str]:
    report = tmp_path_factory.mktemp("report") / "r.json"
    return evaluate_cli("--data", str(tiny_dataset), "--backend", "hull,round", "--detail", "low",
                        "--report", str(report))


@pytest.mark.slow
def test_report_has_every_metric_per_shape_and_as_means(dataset_report):
    report, _ = dataset_report
    hull = report["backends"]["hull"]
    assert [row["id"] for row in hull["shapes"]] == ["000000", "000001", "000002"]   # test split only
    for row in hull["shapes"][:2]:
        assert row["ok"] and row["built_by"] == "hull"
        for key in METRIC_KEYS:
            assert np.isfinite(row[key]), key
    for key in METRIC_KEYS:
        assert hull["means"][key] == pytest.approx(np.mean([row[key] for row in hull["shapes"][:2]]))
    assert report["config"]["backends"] == ["hull"] and report["config"]["split"] == "test"
    assert report["config"]["f_score_thresholds"] == {"1%": 0.02, "2%": 0.04}


@pytest.mark.slow
def test_a_failing_shape_is_recorded_and_counted(dataset_report):
    report, printed = dataset_report
    failed = report["backends"]["hull"]["shapes"][2]
    assert not failed["ok"] and "show no part" in failed["error"]
    assert report["count"] == 3 and report["backends"]["hull"]["failed"] == 1
    assert "FAILED" in printed and "mean" in printed and "2 of 3 shapes" in printed


@pytest.mark.slow
def test_hull_reconstructions_score_sensibly(dataset_report):
    # The hull backend builds the visual hull. A box is its own visual hull. A sphere's front
    # and side circles give the Steinmetz bicylinder (16/3 r^3), so IoU = (4/3 pi) / (16/3) = pi/4.
    sphere_row, box_row, _ = dataset_report[0]["backends"]["hull"]["shapes"]
    assert box_row["chamfer"] < 0.02 and box_row["volume_iou"] > 0.9 and box_row["f_score_2"] > 0.9
    assert sphere_row["volume_iou"] == pytest.approx(np.pi / 4, abs=0.03) and sphere_row["chamfer"] < 0.1
    for row in (sphere_row, box_row):
        assert row["silhouette_iou_front"] > 0.95 and row["silhouette_iou_side"] > 0.95
        assert row["truth_closed"]


@pytest.mark.slow
def test_limit_and_split_select_shapes(tiny_dataset, tmp_path):
    report, _ = evaluate_cli("--data", str(tiny_dataset), "--split", "train", "--limit", "1", "--backend", "hull",
                             "--detail", "low", "--report", str(tmp_path / "r.json"))
    assert [row["id"] for row in report["backends"]["hull"]["shapes"]] == ["000003"]


@pytest.mark.slow
def test_evaluates_a_generated_dataset(tmp_path):
    plan = dataset.make_plan(2, ["table", "lathe"], None, "z", seed=0, resolution=96)
    dataset.generate(tmp_path / "set", plan, workers=1, progress=False)
    report, _ = evaluate_cli("--data", str(tmp_path / "set"), "--split", "all", "--style", "sketchy",
                             "--backend", "hull", "--detail", "low", "--report", str(tmp_path / "r.json"))
    hull = report["backends"]["hull"]
    assert [row["id"] for row in hull["shapes"]] == ["000000", "000001"]
    assert hull["failed"] == 0 and report["config"]["style"] == "sketchy"
    assert all(np.isfinite(row[key]) for row in hull["shapes"] for key in METRIC_KEYS)


def test_unknown_style_is_a_user_error(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="style"):
        evaluate_cli("--data", str(tiny_dataset), "--style", "watercolour", "--backend", "hull",
                     "--report", str(tmp_path / "r.json"))


def test_refine_scores_the_mesh_before_and_after_fitting(tiny_dataset, tmp_path):
    report, printed = evaluate_cli("--data", str(tiny_dataset), "--split", "all", "--backend", "hull", "--detail", "low",
                                   "--refine", "3", "--limit", "1", "--report", str(tmp_path / "r.json"))
    hull = report["backends"]["hull"]
    row = hull["shapes"][0]
    fit = row["fit"]                # a mesh that already matches its drawing is left as it is
    assert row["ok"] and fit["iterations"] == (0 if fit["already_matched"] else 3)
    assert np.isfinite(row["before_refine"]["chamfer"]) and np.isfinite(hull["means_before_refine"]["chamfer"])
    assert "before refine" in printed


def test_refine_out_of_range_is_a_user_error(tiny_dataset, tmp_path):
    with pytest.raises(Refused, match="refine"):
        evaluate_cli("--data", str(tiny_dataset), "--backend", "hull", "--refine", "-2",
                     "--report", str(tmp_path / "r.json"))


@pytest.mark.parametrize("roundness", ["1.5", "-0.1", "nan"])
def test_roundness_out_of_range_is_a_user_error(tiny_dataset, tmp_path, roundness):
    with pytest.raises(Refused, match="roundness"):
        evaluate_cli("--data", str(tiny_dataset), "--backend", "round", f"--roundness={roundness}",
                     "--report", str(tmp_path / "r.json"))
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("value", ["cube", "hull,cube", "hull,hull", ","])
def test_backend_list_must_name_known_backends_once(value, tmp_path, capsys):
    with pytest.raises(SystemExit):
        evaluate_cli("--data", str(tmp_path), "--backend", value, "--report", str(tmp_path / "r.json"))
    assert "--backend" in capsys.readouterr().err


def test_backend_list_keeps_its_order():
    assert evaluate.parse_backends("hull, round,learned") == ("hull", "round", "learned")
    assert evaluate.parse_backends("round") == ("round",)


@pytest.mark.slow
def test_backends_side_by_side_share_sketches_and_samples(compared_report):
    report, printed = compared_report
    hull, rounded = report["backends"]["hull"]["shapes"], report["backends"]["round"]["shapes"]
    assert report["config"]["backends"] == ["hull", "round"] and report["config"]["roundness"] == 1.0
    assert [row["id"] for row in hull] == [row["id"] for row in rounded] == ["000000", "000001", "000002"]
    assert [row["ok"] for row in rounded] == [True, True, False] and rounded[0]["built_by"] == "round"
    # Both read the same drawings: their outlines match the sketches alike.
    for a, b in zip(hull[:2], rounded[:2]):
        for view in evaluate.SKETCH_VIEWS:
            assert a[f"silhouette_iou_{view}"] == pytest.approx(b[f"silhouette_iou_{view}"], abs=0.02)
    # The round backend's cross-sections of a sphere's circles are circles: the sphere itself,
    # where the hull builds the bicylinder (vIoU pi/4). A box stays a box (its cross-sections
    # are squares, which roundness 1 makes ellipses, so it loses volume there).
    assert rounded[0]["volume_iou"] > 0.9 > hull[0]["volume_iou"] + 0.1
    assert rounded[0]["chamfer"] < hull[0]["chamfer"]
    assert rounded[0]["normal_consistency"] > hull[0]["normal_consistency"]
    lines = printed.splitlines()
    assert lines[0].split()[:2] == ["shape", "backend"]
    vs = next(line for line in lines if line.startswith("vs hull"))
    assert vs.split()[:3] == ["vs", "hull", "round"] and vs.split()[3].endswith("x")
    assert "every backend reconstructed" in printed


def test_compared_measures_are_ratios_for_chamfer_and_time_and_differences_otherwise():
    values = {key: 2.0 for key in METRIC_KEYS}
    baseline = {key: 1.0 for key in METRIC_KEYS} | {"f_score_1": None}
    text = evaluate.compared(values, baseline)
    assert text["chamfer"] == "2.00x" and text["time_s"] == "2.00x"
    assert text["volume_iou"] == "+1.000" and text["f_score_1"] is None


def test_learned_backend_with_missing_weights_stops_the_run(tiny_dataset, tmp_path):
    missing = tmp_path / "none.pt"
    with pytest.raises(Refused) as error:
        evaluate_cli("--data", str(tiny_dataset), "--backend", "learned", "--weights", str(missing),
                     "--report", str(tmp_path / "r.json"))
    assert error.value.code == "unavailable" and str(missing) in error.value.message
    assert not (tmp_path / "r.json").exists()
    with pytest.raises(ValueError, match="--backend learned"):
        evaluate_cli("--data", str(tiny_dataset), "--weights", str(missing), "--report", str(tmp_path / "r.json"))


@pytest.mark.slow
def test_mesh_folder_evaluation_skips_broken_files(tmp_path):
    folder = tmp_path / "meshes"
    mesh_io.write_mesh(folder / "round" / "ball.ply", *sphere(0.5))
    (folder / "broken.obj").write_text("this is not a mesh\n")
    (folder / "notes.txt").write_text("ignored\n")
    report, printed = evaluate_cli("--meshes", str(folder), "--backend", "hull", "--detail", "low",
                                   "--report", str(tmp_path / "r.json"))
    broken, ball = report["backends"]["hull"]["shapes"]
    assert ball["id"] == "round/ball" and ball["ok"] and ball["silhouette_iou_front"] > 0.95
    assert broken["id"] == "broken" and not broken["ok"] and "no triangles" in broken["error"]
    assert report["backends"]["hull"]["failed"] == 1 and "broken" in printed

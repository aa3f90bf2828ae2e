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


@pytest.mark.slow
def test_report_has_every_metric_per_shape_and_as_means(dataset_report):
    report, _ = dataset_report
    assert [row["id"] for row in report["shapes"]] == ["000000", "000001", "000002"]   # test split only
    for row in report["shapes"][:2]:
        assert row["ok"]
        for key in METRIC_KEYS:
            assert np.isfinite(row[key]), key
    for key in METRIC_KEYS:
        assert report["means"][key] == pytest.approx(np.mean([row[key] for row in report["shapes"][:2]]))
    assert report["config"]["backend"] == "hull" and report["config"]["split"] == "test"
    assert report["config"]["f_score_thresholds"] == {"1%": 0.02, "2%": 0.04}


@pytest.mark.slow
def test_a_failing_shape_is_recorded_and_counted(dataset_report):
    report, printed = dataset_report
    failed = report["shapes"][2]
    assert not failed["ok"] and "show no part" in failed["error"]
    assert report["count"] == 3 and report["failed"] == 1
    assert "FAILED" in printed and "mean" in printed and "2 of 3 shapes" in printed


@pytest.mark.slow
def test_hull_reconstructions_score_sensibly(dataset_report):
    # The hull backend builds the visual hull. A box is its own visual hull. A sphere's front
    # and side circles give the Steinmetz bicylinder (16/3 r^3), so IoU = (4/3 pi) / (16/3) = pi/4.
    sphere_row, box_row, _ = dataset_report[0]["shapes"]
    assert box_row["chamfer"] < 0.02 and box_row["volume_iou"] > 0.9 and box_row["f_score_2"] > 0.9
    assert sphere_row["volume_iou"] == pytest.approx(np.pi / 4, abs=0.03) and sphere_row["chamfer"] < 0.1
    for row in (sphere_row, box_row):
        assert row["silhouette_iou_front"] > 0.95 and row["silhouette_iou_side"] > 0.95
        assert row["truth_closed"]


@pytest.mark.slow
def test_limit_and_split_select_shapes(tiny_dataset, tmp_path):
    report, _ = evaluate_cli("--data", str(tiny_dataset), "--split", "train", "--limit", "1", "--backend", "hull",
                             "--detail", "low", "--report", str(tmp_path / "r.json"))
    assert [row["id"] for row in report["shapes"]] == ["000003"]


@pytest.mark.slow
def test_evaluates_a_generated_dataset(tmp_path):
    plan = dataset.make_plan(2, ["table", "lathe"], None, "z", seed=0, resolution=96)
    dataset.generate(tmp_path / "set", plan, workers=1, progress=False)
    report, _ = evaluate_cli("--data", str(tmp_path / "set"), "--split", "all", "--style", "sketchy",
                             "--backend", "hull", "--detail", "low", "--report", str(tmp_path / "r.json"))
    assert [row["id"] for row in report["shapes"]] == ["000000", "000001"]
    assert report["failed"] == 0 and report["config"]["style"] == "sketchy"
    assert all(np.isfinite(row[key]) for row in report["shapes"] for key in METRIC_KEYS)


def test_unknown_style_is_a_user_error(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="style"):
        evaluate_cli("--data", str(tiny_dataset), "--style", "watercolour", "--backend", "hull",
                     "--report", str(tmp_path / "r.json"))


def test_refine_scores_the_mesh_before_and_after_fitting(tiny_dataset, tmp_path):
    report, printed = evaluate_cli("--data", str(tiny_dataset), "--split", "all", "--backend", "hull", "--detail", "low",
                                   "--refine", "3", "--limit", "1", "--report", str(tmp_path / "r.json"))
    row = report["shapes"][0]
    assert row["ok"] and row["fit"]["iterations"] == 3
    assert np.isfinite(row["before_refine"]["chamfer"]) and np.isfinite(report["means_before_refine"]["chamfer"])
    assert "before refine" in printed


def test_refine_out_of_range_is_a_user_error(tiny_dataset, tmp_path):
    with pytest.raises(Refused, match="refine"):
        evaluate_cli("--data", str(tiny_dataset), "--backend", "hull", "--refine", "-2",
                     "--report", str(tmp_path / "r.json"))


def test_learned_backend_with_missing_weights_stops_the_run(tiny_dataset, tmp_path):
    missing = tmp_path / "none.pt"
    with pytest.raises(Refused) as error:
        evaluate_cli("--data", str(tiny_dataset), "--weights", str(missing), "--report", str(tmp_path / "r.json"))
    assert error.value.code == "unavailable" and str(missing) in error.value.message
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_mesh_folder_evaluation_skips_broken_files(tmp_path):
    folder = tmp_path / "meshes"
    mesh_io.write_mesh(folder / "round" / "ball.ply", *sphere(0.5))
    (folder / "broken.obj").write_text("this is not a mesh\n")
    (folder / "notes.txt").write_text("ignored\n")
    report, printed = evaluate_cli("--meshes", str(folder), "--backend", "hull", "--detail", "low",
                                   "--report", str(tmp_path / "r.json"))
    broken, ball = report["shapes"]
    assert ball["id"] == "round/ball" and ball["ok"] and ball["silhouette_iou_front"] > 0.95
    assert broken["id"] == "broken" and not broken["ok"] and "no triangles" in broken["error"]
    assert report["failed"] == 1 and "broken" in printed

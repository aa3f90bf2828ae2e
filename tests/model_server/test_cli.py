"""``python -m model_server reconstruct`` on PNG sketches, as a pipeline engineer runs it."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]


def outline_png(path: Path, box: tuple[float, float, float, float], size: int = 400, ellipse: bool = True) -> Path:
    """Dark outline on white; ``box`` is (left, bottom, right, top) on the [-1, 1] canvas."""
    img = Image.new("L", (size, size), 255)
    l, b, r, t = box
    px = [(l + 1) / 2 * size, (1 - t) / 2 * size, (r + 1) / 2 * size, (1 - b) / 2 * size]
    draw = ImageDraw.Draw(img)
    (draw.ellipse if ellipse else draw.rectangle)(px, outline=0, width=3)
    img.save(path)
    return path


def reconstruct(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model_server", "reconstruct", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def read_vertices(path: Path) -> np.ndarray:
    import open3d as o3d

    return np.asarray(o3d.io.read_triangle_mesh(str(path)).vertices)


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_png_sketches_become_a_mesh_in_the_canvas_frame(tmp_path, suffix):
    front = outline_png(tmp_path / "f.png", (-0.5, -0.7, 0.3, 0.7))
    side = outline_png(tmp_path / "s.png", (-0.4, -0.7, 0.4, 0.7), ellipse=False)
    out, report = tmp_path / f"mesh{suffix}", tmp_path / "report.json"
    proc = reconstruct("--front", str(front), "--side", str(side), "--backend", "hull", "--detail", "low",
                       "--device", "cpu", "--out", str(out), "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(report.read_text())
    assert rep["backend"] == "hull" and rep["device"] == "cpu" and rep["vertices"] > 100 and rep["faces"] > 100
    assert {"total", "rasterize", "predict", "fuse", "refine"} <= set(rep["timings_s"])
    assert isinstance(rep["notes"], list) and not any("truer shape" in note for note in rep["notes"])
    assert out.stat().st_size > 1000
    if suffix == ".glb":
        magic, version, length = struct.unpack("<4sII", out.read_bytes()[:12])
        assert magic == b"glTF" and version == 2 and length == out.stat().st_size
    if suffix in (".ply", ".obj"):
        v = read_vertices(out)
        lo, hi = v.min(0), v.max(0)
        np.testing.assert_allclose([lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]],
                                   [-0.5, 0.3, -0.4, 0.4, -0.7, 0.7], atol=0.06)


@pytest.mark.parametrize("view", ["front", "side"])
def test_one_view_alone_is_inflated_and_the_report_says_a_second_view_helps(tmp_path, view):
    # An ellipse 1.0 wide and 0.8 tall, centred at (-0.2, 0.1) on the view's canvas.
    png = outline_png(tmp_path / f"{view}.png", (-0.7, -0.3, 0.3, 0.5))
    out, report = tmp_path / "mesh.ply", tmp_path / "report.json"
    proc = reconstruct(f"--{view}", str(png), "--backend", "hull", "--detail", "low", "--device", "cpu",
                       "--out", str(out), "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    notes = json.loads(report.read_text())["notes"]
    missing = "side" if view == "front" else "front"
    assert any("truer shape" in note and missing in note for note in notes), notes
    assert any(line.startswith("Note: ") and "truer shape" in line for line in proc.stdout.splitlines()), proc.stdout
    v = read_vertices(out)
    lo, hi = v.min(0), v.max(0)
    # The drawn axes keep the outline's extent; the unseen one (y for front, x for side) is
    # inflated symmetrically about the drawing plane, about as thick as the ellipse is tall.
    drawn, unseen = ([0, 2], 1) if view == "front" else ([1, 2], 0)
    np.testing.assert_allclose([lo[drawn[0]], hi[drawn[0]], lo[2], hi[2]], [-0.7, 0.3, -0.3, 0.5], atol=0.06)
    assert abs(lo[unseen] + hi[unseen]) < 0.03
    assert 0.25 < hi[unseen] < 0.45


def test_neither_front_nor_side_is_one_line_and_no_output(tmp_path):
    top = outline_png(tmp_path / "top.png", (-0.5, -0.5, 0.5, 0.5))
    out = tmp_path / "mesh.ply"
    for args in ([], ["--top", str(top)]):
        proc = reconstruct(*args, "--backend", "hull", "--out", str(out))
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [
            "error: give --front, --side or both: at least one of the front and side sketches is needed"]
        assert not out.exists()


def bad_pngs(tmp: Path) -> dict[str, Path]:
    Image.new("L", (256, 256), 255).save(tmp / "blank.png")
    Image.new("L", (256, 256), 0).save(tmp / "black.png")
    (tmp / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    return {"blank": tmp / "blank.png", "black": tmp / "black.png", "corrupt": tmp / "corrupt.png",
            "missing": tmp / "missing.png"}


@pytest.mark.parametrize("kind", ["blank", "black", "corrupt", "missing"])
def test_bad_png_exits_with_one_line_and_no_output(tmp_path, kind):
    good = outline_png(tmp_path / "good.png", (-0.5, -0.5, 0.5, 0.5))
    bad = bad_pngs(tmp_path)[kind]
    out = tmp_path / "mesh.ply"
    proc = reconstruct("--front", str(good), "--side", str(bad), "--backend", "hull", "--out", str(out))
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()


@pytest.mark.slow      # 7 s, three runs; the fast lane has test_pipeline's default and test_learned's bad weights
def test_the_round_backend_is_the_default_and_a_missing_weights_file_is_named(tmp_path):
    good = outline_png(tmp_path / "good.png", (-0.5, -0.5, 0.5, 0.5))
    out, report = tmp_path / "mesh.ply", tmp_path / "r.json"
    proc = reconstruct("--front", str(good), "--side", str(good), "--detail", "low", "--out", str(out),
                       "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(report.read_text())["backend"] == "round"
    missing = tmp_path / "none.pt"
    proc = reconstruct("--front", str(good), "--side", str(good), "--backend", "learned", "--weights", str(missing), "--out",
                       str(tmp_path / "m2.ply"))
    assert proc.returncode != 0 and str(missing) in proc.stderr and "Traceback" not in proc.stderr
    proc = reconstruct("--front", str(good), "--side", str(good), "--weights", str(missing), "--out",
                       str(tmp_path / "m3.ply"))
    assert proc.returncode != 0 and "--backend learned" in proc.stderr and not (tmp_path / "m3.ply").exists()


@pytest.mark.parametrize("roundness", ["0", "0.5", "1"])
def test_the_round_backend_runs_from_pngs_and_keeps_the_outlines(tmp_path, roundness):
    front = outline_png(tmp_path / "f.png", (-0.5, -0.7, 0.3, 0.7))
    side = outline_png(tmp_path / "s.png", (-0.4, -0.7, 0.4, 0.7), ellipse=False)
    out, report = tmp_path / "mesh.ply", tmp_path / "report.json"
    proc = reconstruct("--front", str(front), "--side", str(side), "--backend", "round", "--roundness", roundness,
                       "--detail", "low", "--out", str(out), "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(report.read_text())
    assert rep["backend"] == "round" and rep["device"] == "cpu" and rep["faces"] > 100
    v = read_vertices(out)
    lo, hi = v.min(0), v.max(0)
    np.testing.assert_allclose([lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]],
                               [-0.5, 0.3, -0.4, 0.4, -0.7, 0.7], atol=0.06)


@pytest.mark.parametrize("roundness", ["2", "-0.1", "nan", "inf"])
def test_a_roundness_outside_0_to_1_is_one_line_and_no_output(tmp_path, roundness):
    good = outline_png(tmp_path / "good.png", (-0.5, -0.5, 0.5, 0.5))
    out, report = tmp_path / "m.ply", tmp_path / "r.json"
    proc = reconstruct("--front", str(good), "--side", str(good), "--backend", "round", f"--roundness={roundness}",
                       "--out", str(out), "--report", str(report))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "roundness" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not report.exists()


def test_unknown_output_format_is_refused(tmp_path):
    good = outline_png(tmp_path / "good.png", (-0.5, -0.5, 0.5, 0.5))
    proc = reconstruct("--front", str(good), "--side", str(good), "--backend", "hull", "--out", str(tmp_path / "m.stl"))
    assert proc.returncode != 0 and ".ply" in proc.stderr


def test_refine_fits_the_mesh_and_reports_the_silhouettes(tmp_path):
    front = outline_png(tmp_path / "f.png", (-0.5, -0.7, 0.3, 0.7))
    side = outline_png(tmp_path / "s.png", (-0.4, -0.7, 0.4, 0.7), ellipse=False)
    out, report = tmp_path / "mesh.ply", tmp_path / "report.json"
    proc = reconstruct("--front", str(front), "--side", str(side), "--backend", "hull", "--detail", "low",
                       "--refine", "20", "--device", "cpu", "--out", str(out), "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(report.read_text())
    assert rep["timings_s"]["refine"] > 0 and rep["fit"]["iterations"] <= 20
    assert all(rep["fit"]["iou_after"][view] >= 0.97 for view in ("front", "side"))
    assert "Fit to strokes" in proc.stdout and out.exists()


def test_negative_refine_is_refused(tmp_path):
    good = outline_png(tmp_path / "good.png", (-0.5, -0.5, 0.5, 0.5))
    out = tmp_path / "m.ply"
    proc = reconstruct("--front", str(good), "--side", str(good), "--backend", "hull", "--refine", "-1", "--out", str(out))
    assert proc.returncode == 2 and "--refine" in proc.stderr and not out.exists()


@pytest.mark.parametrize("command", ["dataset", "dataset-preview", "train", "evaluate", "export-weights"])
def test_every_plugged_command_parses_its_options(command):
    import importlib

    from model_server.__main__ import PLUGGED, build_parser

    module, _, run, _ = PLUGGED[command]
    assert callable(getattr(importlib.import_module(module), run))
    with pytest.raises(SystemExit) as exit_:
        build_parser([command, "--help"]).parse_args([command, "--help"])
    assert exit_.value.code == 0

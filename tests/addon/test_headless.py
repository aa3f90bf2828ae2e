"""sketch2mesh_addon/headless.py with the bpy wheel: ``python headless.py --blend FILE -- ...``."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from pathlib import Path

import bpy
import numpy as np
import pytest

from sketch2mesh_addon import headless, mesh_import, protocol, strokes

SCRIPT = Path(headless.__file__).resolve()
SQUARE = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]], np.float32)


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def sketch_blend(draw_sketch, tmp_path):
    """A .blend holding a drawn sketch (and nothing active)."""
    draw_sketch()
    bpy.context.view_layer.objects.active = None
    path = tmp_path / "sketch.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    return path


def test_split_argv_handles_blender_and_python_invocations():
    blender = ["/opt/blender/blender", "-b", "f.blend", "-P", "headless.py", "--", "--out", "x.obj"]
    assert headless.split_argv(blender) == ["--out", "x.obj"]
    assert headless.split_argv(["/opt/blender/blender", "-b", "f.blend", "-P", "headless.py"]) == []
    wheel = ["sketch2mesh_addon/headless.py", "--blend", "f.blend", "--", "--out", "x.obj"]
    assert headless.split_argv(wheel) == ["--blend", "f.blend", "--out", "x.obj"]
    assert headless.split_argv(["headless.py", "--strokes", "s.json", "--out", "a.ply"]) == \
        ["--strokes", "s.json", "--out", "a.ply"]


def test_backend_and_detail_choices_come_from_the_protocol(monkeypatch):
    monkeypatch.setattr(protocol, "BACKENDS", ("hull", "sculpted"))
    monkeypatch.setattr(protocol, "DETAILS", ("draft",))
    parser = headless.build_parser()
    args = parser.parse_args(["--backend", "sculpted", "--detail", "draft", "--out", "x.obj"])
    assert (args.backend, args.detail) == ("sculpted", "draft")
    with pytest.raises(SystemExit):
        parser.parse_args(["--backend", "learned", "--out", "x.obj"])


def test_round_backend_and_roundness_parse_and_default_to_the_protocols():
    parser = headless.build_parser()
    args = parser.parse_args(["--backend", "round", "--roundness", "0.5", "--out", "x.obj"])
    assert (args.backend, args.roundness) == ("round", 0.5)
    args = parser.parse_args(["--out", "x.obj"])
    assert (args.backend, args.roundness) == (protocol.DEFAULT_BACKEND, protocol.DEFAULT_ROUNDNESS)


@pytest.mark.parametrize("roundness", ["2", "-0.5", "nan"])
def test_headless_bad_roundness_is_one_line_and_no_output(sketch_blend, tmp_path, roundness):
    out = tmp_path / "never.obj"
    done = _run("--blend", str(sketch_blend), "--", "--backend", "round", f"--roundness={roundness}",
                "--out", str(out), timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == \
        f"error: --roundness must be a number from 0 to 1, not {float(roundness)!r}", done.stderr
    assert not out.exists()


@pytest.mark.slow
def test_headless_reconstructs_with_the_round_backend(sketch_blend, served_scene, server, tmp_path):
    bpy.ops.wm.open_mainfile(filepath=str(sketch_blend))
    out = tmp_path / "round.ply"
    argv = ["blender", "-b", str(sketch_blend), "-P", str(SCRIPT), "--", "--backend", "round", "--roundness", "0.5",
            "--detail", "low", "--port", str(server["port"]), "--out", str(out)]
    assert headless.main(argv) == 0
    assert out.is_file() and out.read_bytes().startswith(b"ply")
    assert bpy.data.objects["Sketch_mesh"]["sketch2mesh_backend"] == "round"


@pytest.mark.slow
def test_headless_writes_every_format_and_a_preview(sketch_blend, tmp_path, unused_port, server_python):
    before = _sha(sketch_blend)
    outs = [tmp_path / "out" / f"result{suffix}" for suffix in (".blend", ".obj", ".ply", ".glb")]
    preview = tmp_path / "out" / "preview.png"
    args = ["--blend", str(sketch_blend), "--", "--backend", "hull", "--detail", "low",
            "--server-python", server_python, "--port", str(unused_port), "--render", str(preview)]
    for out in outs:
        args += ["--out", str(out)]
    done = _run(*args)
    assert done.returncode == 0, done.stderr
    for path in [*outs, preview]:
        assert path.is_file() and path.stat().st_size > 0, path
    assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "v " in outs[1].read_text()[:10_000]
    assert _sha(sketch_blend) == before  # the input file is never saved

    bpy.ops.wm.open_mainfile(filepath=str(outs[0]))
    mesh = bpy.data.objects["Sketch_mesh"]
    assert mesh_import.source_sketch(mesh) == bpy.data.objects["Sketch"]
    assert len(strokes.read_sketch(bpy.data.objects["Sketch"])["front"]) == 1


def test_headless_bad_sketch_exits_non_zero_with_one_line_and_no_output(draw_sketch, tmp_path, unused_port):
    draw_sketch({"top": [SQUARE]})
    blend = tmp_path / "top_only.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    out = tmp_path / "never.obj"
    done = _run("--blend", str(blend), "--", "--port", str(unused_port), "--out", str(out))
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Only the top view is drawn"), done.stderr
    assert not out.exists()


@pytest.mark.slow
def test_blender_style_arguments_reconstruct_the_loaded_file(sketch_blend, served_scene, server, tmp_path):
    # What `blender -b FILE -P headless.py -- ...` does: Blender has loaded FILE; the script reads what follows "--".
    bpy.ops.wm.open_mainfile(filepath=str(sketch_blend))
    out = tmp_path / "from_blender.ply"
    argv = ["blender", "-b", str(sketch_blend), "-P", str(SCRIPT), "--", "--sketch", "Sketch",
            "--port", str(server["port"]), "--refine", "5", "--out", str(out)]
    assert headless.main(argv) == 0
    assert out.is_file() and out.read_bytes().startswith(b"ply")
    result = bpy.data.objects["Sketch_mesh"]
    assert result.sketch2mesh.sketch == bpy.data.objects["Sketch"]
    fit = result[mesh_import.FIT_PROPERTY]
    # a mesh that already matches its drawing is left as it is
    assert fit["iterations"] == (0 if fit["already_matched"] else 5) and min(fit["iou_after"].values()) > 0.95


def test_headless_missing_file_is_one_line(tmp_path):
    done = _run("--blend", str(tmp_path / "nope.blend"), "--", "--out", str(tmp_path / "x.obj"), timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == f"error: the file {tmp_path / 'nope.blend'} does not exist"


def test_headless_rejects_unknown_output_formats(sketch_blend, tmp_path):
    done = _run("--blend", str(sketch_blend), "--", "--out", str(tmp_path / "x.stl"), timeout=120)
    assert done.returncode != 0
    assert "--out must end in" in done.stderr.strip().splitlines()[-1]


"""The learned backend: the shipped weights load and beat the hull and the round prior on a
bundled example with a known shape; any checkpoint ``train`` writes can be served; bad or
earlier designs' weights files are refused with one sentence naming them; inference is
deterministic."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from model_server.errors import Refused
from model_server.evaluation import metrics
from model_server.geometry.views import INPUT_VIEWS
from model_server.reconstruct import backends, pipeline
from model_server.reconstruct.backends.learned import SHIPPED_WEIGHTS
from model_server.sketch.png import load_png_sketch
from model_server.sketch.silhouette import read_silhouette

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
WEIGHTS_LIMIT_BYTES = 30 * 2**20


def _example_module():
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _mug_inks() -> dict[str, np.ndarray]:
    return {view: load_png_sketch(EXAMPLES / "mug" / f"{view}.png") for view in ("front", "side", "top")}


def test_the_weights_are_shipped_compact_and_load_offline():
    assert SHIPPED_WEIGHTS.is_file(), "the learned backend's weights must be committed"
    assert SHIPPED_WEIGHTS.stat().st_size <= WEIGHTS_LIMIT_BYTES
    import torch

    state = torch.load(SHIPPED_WEIGHTS, map_location="cpu", weights_only=True)
    assert state["kind"] == "inference" and state["config"]["design"] == "field"
    assert all(v.dtype == torch.float16 for v in state["model"].values() if v.is_floating_point())


def test_the_learned_backend_loads_by_name():
    assert "learned" in backends.BACKENDS
    assert backends.load("learned").name == "learned"


@pytest.mark.parametrize("content", [None, b"", b"not a checkpoint at all"])
def test_a_missing_or_corrupt_weights_file_is_one_sentence_naming_it(tmp_path, content):
    path = tmp_path / "weights.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(Refused) as caught:
        backends.load("learned", path)
    message = caught.value.message
    assert str(path) in message and "\n" not in message


def test_the_cli_names_a_bad_weights_file_in_one_line(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00" * 100)
    run = subprocess.run([sys.executable, "-m", "model_server", "reconstruct", "--front",
                          str(EXAMPLES / "mug" / "front.png"), "--side", str(EXAMPLES / "mug" / "side.png"),
                          "--backend", "learned", "--weights", str(bad), "--out", str(tmp_path / "m.ply")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if str(bad) in line]
    assert len(lines) == 1 and "Traceback" not in run.stderr


def test_inference_is_deterministic():
    inks = _mug_inks()
    silhouettes = {view: read_silhouette(ink).mask for view, ink in inks.items()}
    backend = backends.load("learned")
    a = backend.predict(inks, silhouettes, 256)
    b = backend.predict(inks, silhouettes, 256)
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.mask, b.mask)


def _dog_chamfers() -> dict[str, float]:
    """The bundled dog is a procedural quadruped that training never saw, so its true shape
    is known: each backend's Chamfer distance to it from the dog's front and side, after
    checking the learned result still matches the sketch."""
    module = _example_module()
    family, seed = module.PROCEDURAL["dog"]
    vertices, faces = module.make_procedural(family, seed)
    truth = module.normalise(vertices), faces
    inks = {view: load_png_sketch(EXAMPLES / "dog" / f"{view}.png") for view in ("front", "side")}
    rng = np.random.default_rng(0)
    true_points, _ = metrics.sample_surface(*truth, metrics.SURFACE_SAMPLES, rng)
    chamfer = {}
    for backend in ("hull", "round", "learned"):
        result = pipeline.reconstruct_images(inks, backend=backend)
        points, _ = metrics.sample_surface(result.vertices, result.faces, metrics.SURFACE_SAMPLES, rng)
        chamfer[backend] = metrics.chamfer(points, true_points)
        if backend == "learned":
            for view in ("front", "side"):
                iou = metrics.silhouette_iou(result.vertices, result.faces, result.silhouettes[view], INPUT_VIEWS[view])
                assert iou >= 0.95, (view, iou)
    return chamfer


@pytest.fixture(scope="module")
def dog_chamfers() -> dict[str, float]:
    return _dog_chamfers()


@pytest.mark.slow
def test_shipped_weights_beat_the_hull_on_the_bundled_dog(dog_chamfers):
    assert dog_chamfers["learned"] < dog_chamfers["hull"], dog_chamfers


@pytest.mark.slow
def test_shipped_weights_beat_the_round_prior_on_the_bundled_dog(dog_chamfers):
    assert dog_chamfers["learned"] < dog_chamfers["round"], dog_chamfers


@pytest.mark.slow
def test_a_checkpoint_written_by_train_is_served(tmp_path):
    """Train two steps on a fresh two-shape dataset; the training checkpoint and its export
    both load into the backend and predict maps inside the hull."""
    data, run = tmp_path / "data", tmp_path / "run" / "field.pt"
    for args in (["dataset", "--out", str(data), "--count", "2", "--workers", "1", "--families", "assembly"],
                 ["train", "--data", str(data), "--out", str(run), "--steps", "2", "--batch", "1", "--width", "4",
                  "--workers", "0", "--checkpoint-every", "2"],
                 ["export-weights", str(run), "--out", str(tmp_path / "small.pt")]):
        subprocess.run([sys.executable, "-m", "model_server", *args], check=True, cwd=ROOT, timeout=600,
                       capture_output=True)
    inks = _mug_inks()
    silhouettes = {view: read_silhouette(ink).mask for view, ink in inks.items()}
    hull = backends.load("hull").predict(inks, silhouettes, 256)
    for weights in (run, tmp_path / "small.pt"):
        maps = backends.load("learned", weights).predict(inks, silhouettes, 256)
        assert maps.depth.shape == (14, 256, 256)
        grown = ndimage.binary_dilation(hull.mask > 0.5, structure=np.ones((1, 3, 3), bool))   # one pixel of rendering
        assert not ((maps.mask > 0.5) & ~grown).any()
    result = pipeline.reconstruct_images(inks, backend="learned", weights=run, detail="low")
    assert result.backend == "learned" and len(result.faces) > 100


def test_an_earlier_designs_checkpoint_is_refused_with_a_sentence(tmp_path):
    from model_server.learning.checkpoint import FORMAT, save_checkpoint

    save_checkpoint(tmp_path / "old.pt", {"format": FORMAT, "kind": "inference", "step": 0, "model": {},
                                          "config": {"design": "refine", "width": 16}})
    with pytest.raises(Refused, match="earlier design") as caught:
        backends.load("learned", tmp_path / "old.pt")
    assert str(tmp_path / "old.pt") in caught.value.message and "\n" not in caught.value.message

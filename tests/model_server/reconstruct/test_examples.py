"""Every bundled example builds at every detail level, from its PNGs and from its strokes.

The strokes are the ones the Blender demo draws into a Grease Pencil object (the add-on
sends the same arrays over the socket; tests/addon/test_examples.py runs that path in
Blender). Each mesh must be closed, outward and overlay its sketch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model_server.evaluation.metrics import silhouette_iou
from model_server.geometry.mesh import closed_and_oriented, signed_volume
from model_server.geometry.views import INPUT_VIEWS
from model_server.reconstruct import pipeline
from model_server.sketch.png import load_png_sketch

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "strokes.json").is_file())
DETAILS = ("low", "medium", "high")


def example_strokes(name: str) -> dict[str, list[np.ndarray]]:
    """The example's strokes as the add-on sends them: (u, v, pressure) per point."""
    data = json.loads((EXAMPLES / name / "strokes.json").read_text())
    return {view: [np.column_stack([np.asarray(s, float), np.ones(len(s))]) for s in strokes]
            for view, strokes in data.items()}


def check(result: pipeline.Result, canonical_vertices: np.ndarray) -> None:
    assert closed_and_oriented(result.faces) and signed_volume(result.vertices, result.faces) > 0
    for view in ("front", "side"):
        iou = silhouette_iou(canonical_vertices, result.faces, result.silhouettes[view], INPUT_VIEWS[view])
        assert iou >= 0.95, (view, iou)


def test_there_are_examples():
    assert {"mug", "spot", "stanford-bunny", "teapot"} <= set(NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("detail", DETAILS)
@pytest.mark.parametrize("name", NAMES)
def test_example_builds_from_its_strokes(name, detail):
    strokes = example_strokes(name)
    result = pipeline.reconstruct_strokes(strokes, detail=detail)
    frame, _, _ = pipeline._sketch_images(strokes)
    check(result, frame.to_canonical(result.vertices))


@pytest.mark.slow
@pytest.mark.parametrize("detail", DETAILS)
@pytest.mark.parametrize("name", NAMES)
def test_example_builds_from_its_pngs(name, detail):
    inks = {view: load_png_sketch(EXAMPLES / name / f"{view}.png") for view in ("front", "side")}
    result = pipeline.reconstruct_images(inks, detail=detail)
    check(result, result.vertices)

"""The round backend: rounded cross-sections that keep the drawn outlines (front, side, top)."""

import numpy as np
import open3d as o3d
import pytest

from model_server.errors import Refused
from model_server.evaluation.metrics import volumetric_iou
from model_server.geometry import views
from model_server.geometry.mesh import closed_and_oriented, signed_volume
from model_server.geometry.raycast import render_silhouette
from model_server.reconstruct import backends, pipeline
from model_server.reconstruct.backends.hull import HullField, hull_mesh
from model_server.reconstruct.backends.round import RoundField, superellipse
from model_server.sketch.read import read_sketch
from model_server.sketch.rasterize import rasterize_strokes
from model_server.sketch.silhouette import iou, read_silhouette


def _mask(view: views.View, inside) -> np.ndarray:
    u, v = views.plane_grid(view)
    return inside(u, v)


def _rect(half_u: float, lo: float, hi: float):
    return lambda u, v: (np.abs(u) <= half_u) & (v >= lo) & (v <= hi)


def _reconstruct(sketch: dict, roundness: float = 1.0) -> pipeline.Result:
    result = pipeline.reconstruct_strokes(sketch, backend="round", roundness=roundness)
    assert result.backend == "round"
    assert closed_and_oriented(result.faces)
    return result


def test_two_circles_give_a_sphere(sketches):
    result = _reconstruct(sketches["sphere"])
    sphere = o3d.geometry.TriangleMesh.create_sphere(radius=0.6, resolution=80)
    truth = (np.asarray(sphere.vertices), np.asarray(sphere.triangles))
    assert volumetric_iou((result.vertices, result.faces), truth, res=96) >= 0.95


@pytest.mark.slow
def test_roundness_zero_is_the_hull(sketches):
    for name in ("mug", "L"):
        hull = pipeline.reconstruct_strokes(sketches[name], backend="hull")
        square = _reconstruct(sketches[name], roundness=0.0)
        assert volumetric_iou((square.vertices, square.faces), (hull.vertices, hull.faces), res=96) >= 0.99, name


def test_a_box_becomes_an_elliptic_cylinder_with_the_drawn_outlines(sketches):
    result = _reconstruct(sketches["box"])
    drawn = {"front": _rect(0.5, -0.7, 0.6), "side": _rect(0.3, -0.7, 0.6)}
    for name, inside in drawn.items():
        view = views.INPUT_VIEWS[name]
        assert iou(render_silhouette(result.vertices, result.faces, view), _mask(view, inside)) >= 0.98, name
    assert signed_volume(result.vertices, result.faces) == pytest.approx(np.pi * 0.5 * 0.3 * 1.3, rel=0.03)


def test_roundness_between_gives_a_superellipse(sketches):
    """Volume grows monotonically from the ellipse (1) to the rectangle (0)."""
    volumes = [signed_volume(*(lambda r: (r.vertices, r.faces))(_reconstruct(sketches["box"], roundness)))
               for roundness in (1.0, 0.5, 0.0)]
    assert volumes[0] < volumes[1] < volumes[2]
    assert volumes[2] == pytest.approx(1.0 * 0.6 * 1.3, rel=0.02)


def test_a_line_drawn_in_front_and_side_becomes_a_round_tube(polygon):
    """A stem drawn as one line in both views: every horizontal cross-section of the field
    is a disk (all points on a circle just inside the line's half-width are inside, all
    just outside are outside), where the hull's would be a square."""
    line = [np.array([[0.0, -0.7, 1.0], [0.0, 0.7, 1.0]])]
    silhouettes = {name: read_silhouette(rasterize_strokes(line)) for name in ("front", "side")}
    assert silhouettes["front"].thin.any()
    field = RoundField({name: s.mask for name, s in silhouettes.items()}, 1.0)
    columns = np.flatnonzero(silhouettes["front"].mask[128])
    radius = 0.5 * len(columns) * views.FRONT.pixel_size()
    centre = views.pixel_to_plane(128, columns.mean(), 1.0, views.RESOLUTION)[0]
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    for z in (-0.4, 0.0, 0.4):
        ring = lambda r: np.stack([centre + r * np.cos(angles), centre + r * np.sin(angles), np.full_like(angles, z)], 1)
        assert (field.value_and_gradient(ring(0.8 * radius))[0] < 0).all()
        assert (field.value_and_gradient(ring(1.2 * radius))[0] > 0).all()
        assert (field.value(ring(1.2 * radius)) < 0).any()   # the hull there is a square bar


@pytest.mark.parametrize("top, truth_volume", [("circle", np.pi * 0.5 ** 2 * 1.2), ("square", 1.0 * 1.0 * 1.2)])
def test_a_top_view_is_kept(polygon, circle, top, truth_volume):
    square = polygon([(-0.5, -0.6), (0.5, -0.6), (0.5, 0.6), (-0.5, 0.6)])
    drawn_top = circle(0.5) if top == "circle" else polygon([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)])
    result = _reconstruct({"front": [square], "side": [square], "top": [drawn_top]})
    top_mask = _mask(views.TOP, (lambda u, v: u ** 2 + v ** 2 <= 0.25) if top == "circle" else _rect(0.5, -0.5, 0.5))
    assert iou(render_silhouette(result.vertices, result.faces, views.TOP), top_mask) >= 0.97
    for name in ("front", "side"):
        view = views.INPUT_VIEWS[name]
        assert iou(render_silhouette(result.vertices, result.faces, view), _mask(view, _rect(0.5, -0.6, 0.6))) >= 0.97
    assert signed_volume(result.vertices, result.faces) == pytest.approx(truth_volume, rel=0.03)


def test_a_top_view_of_three_circles_gives_a_sphere(circle):
    result = _reconstruct({"front": [circle()], "side": [circle()], "top": [circle()]})
    assert signed_volume(result.vertices, result.faces) == pytest.approx(4 / 3 * np.pi * 0.6 ** 3, rel=0.03)


def test_one_view_alone_is_inflated(sketches):
    result = pipeline.reconstruct_strokes({"front": sketches["sphere"]["front"]}, backend="round")
    assert result.backend == "inflate" and result.notes


def test_superellipse_runs_from_ellipse_to_rectangle():
    u, v = np.array([0.6, 0.0, 1.0]), np.array([0.8, 1.0, 1.0])
    assert superellipse(u, v, 2.0)[0] == pytest.approx([1.0, 1.0, np.sqrt(2.0)])
    assert superellipse(u, v, 2000.0)[0] == pytest.approx([0.8, 1.0, 1.0], abs=1e-3)


@pytest.mark.parametrize("roundness", [-0.1, 1.5, float("nan"), True, "1"])
def test_roundness_outside_zero_to_one_is_refused(sketches, roundness):
    with pytest.raises(Refused, match="roundness"):
        pipeline.reconstruct_strokes(sketches["sphere"], backend="round", roundness=roundness)
    with pytest.raises(Refused):
        backends.check_roundness(roundness)


def test_a_top_view_the_ellipses_alone_would_cut_is_kept():
    """The bundled cow: seen from above, its ellipses miss the ears and the tail's end (they
    lie off the centre lines the side view gives); the hull's columns fill in just there."""
    import json
    from pathlib import Path

    data = json.loads((Path(__file__).resolve().parents[3] / "examples" / "spot" / "strokes.json").read_text())
    strokes = {view: [np.column_stack([np.asarray(s, float), np.ones(len(s))]) for s in lines]
               for view, lines in data.items()}
    frame, canonical, images = pipeline._sketch_images(strokes)
    silhouettes = read_sketch(images, canonical).silhouettes
    field = RoundField(silhouettes)
    assert field.band is not None
    vertices, faces = hull_mesh(field)
    for view in ("front", "side", "top"):
        assert iou(render_silhouette(vertices, faces, views.INPUT_VIEWS[view]), silhouettes[view]) >= 0.98, view
    without = RoundField({view: silhouettes[view] for view in ("front", "side")})
    assert signed_volume(*hull_mesh(without)) < signed_volume(vertices, faces) < \
        signed_volume(*hull_mesh(HullField(silhouettes)))

import numpy as np
import open3d as o3d
import pytest
from PIL import Image

from model_server.errors import Refused
from model_server.evaluation.metrics import silhouette_iou
from model_server.geometry import views
from model_server.geometry.mesh import closed_and_oriented, signed_volume
from model_server.reconstruct import pipeline
from model_server.sketch.png import load_png_sketch
from model_server.sketch.rasterize import rasterize_strokes
from model_server.sketch.silhouette import fill_silhouette

TIMING_KEYS = {"rasterize", "predict", "fuse", "snap", "trust", "refine", "poisson", "total"}


@pytest.fixture(scope="module")
def results(sketches):
    """The hull backend's results: their volumes have closed forms (the learned backend's
    are checked against ground truth in test_learned.py and benchmarks/bench_learned.py)."""
    return {name: pipeline.reconstruct_strokes(sketch, backend="hull") for name, sketch in sketches.items()}


# The shapes the conftest sketches draw, written out independently of the pipeline: each
# view's filled outline as a polygon in world (u, v) (circles as fine polygons), and the
# volume of the visual hull where it has a closed form.
def _ellipse(rx: float, ry: float, n: int = 720) -> list[tuple[float, float]]:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return list(zip(rx * np.cos(t), ry * np.sin(t)))


TRUE_OUTLINES = {
    "sphere": {"front": _ellipse(0.6, 0.6), "side": _ellipse(0.6, 0.6)},
    "box": {"front": [(-0.5, -0.7), (0.5, -0.7), (0.5, 0.6), (-0.5, 0.6)],
            "side": [(-0.3, -0.7), (0.3, -0.7), (0.3, 0.6), (-0.3, 0.6)]},
    "L": {"front": [(-0.6, -0.7), (0.6, -0.7), (0.6, -0.3), (-0.2, -0.3), (-0.2, 0.7), (-0.6, 0.7)],
          "side": [(-0.4, -0.7), (0.4, -0.7), (0.4, 0.7), (-0.4, 0.7)]},
    "mug": {"front": [(-0.4, -0.6), (0.4, -0.6), (0.4, -0.3), (0.7, -0.3), (0.7, 0.3), (0.4, 0.3), (0.4, 0.6), (-0.4, 0.6)],
            "side": _ellipse(0.4, 0.6)},
}
TRUE_VOLUMES = {"sphere": 16.0 / 3.0 * 0.6 ** 3,   # two crossed cylinders (Steinmetz solid)
                "box": 1.0 * 0.6 * 1.3}


def _true_mask(outline: list[tuple[float, float]], view: views.View, res: int = 256) -> np.ndarray:
    from matplotlib.path import Path as Outline

    u, v = views.plane_grid(view, res)
    return Outline(np.array(outline)).contains_points(np.stack([u.ravel(), v.ravel()], 1)).reshape(res, res)


@pytest.mark.slow
def test_silhouettes_and_volume_match_the_drawn_shape(results, sketch_name):
    result = results[sketch_name]
    for view in ("front", "side"):
        truth = _true_mask(TRUE_OUTLINES[sketch_name][view], views.INPUT_VIEWS[view])
        assert silhouette_iou(result.vertices, result.faces, truth, views.INPUT_VIEWS[view]) >= 0.97
    if sketch_name in TRUE_VOLUMES:
        assert signed_volume(result.vertices, result.faces) == pytest.approx(TRUE_VOLUMES[sketch_name], rel=0.02)


@pytest.mark.slow
def test_mesh_is_watertight_and_outward(results, sketch_name):
    result = results[sketch_name]
    assert result.vertices.dtype == np.float32 and result.faces.dtype == np.int32
    assert closed_and_oriented(result.faces) and signed_volume(result.vertices, result.faces) > 0
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(result.vertices.astype(np.float64)),
                                     o3d.utility.Vector3iVector(result.faces))
    assert mesh.is_watertight() and mesh.is_orientable()


def test_result_records_backend_device_timings(results):
    result = results["box"]
    assert (result.backend, result.device) == ("hull", "cpu")
    assert set(result.timings) == TIMING_KEYS and result.timings["refine"] == 0.0
    assert all(t >= 0 for t in result.timings.values())
    assert set(result.silhouettes) == {"front", "side"} and result.silhouettes["front"].dtype == bool


def test_strokes_drawn_anywhere_give_a_mesh_overlaying_them(sketches):
    centre, scale = np.array([3.0, -2.0, 5.0]), 4.0
    moved = {}
    for view, strokes in sketches["L"].items():
        axes = {"front": [0, 2], "side": [1, 2]}[view]
        moved[view] = [np.column_stack([s[:, :2] * scale + centre[axes], s[:, 2]]) for s in strokes]
    result = pipeline.reconstruct_strokes(moved)
    front = np.concatenate(moved["front"])[:, :2]
    side = np.concatenate(moved["side"])[:, :2]
    lo, hi = result.vertices.min(axis=0), result.vertices.max(axis=0)
    expected_lo = [front[:, 0].min(), side[:, 0].min(), front[:, 1].min()]
    expected_hi = [front[:, 0].max(), side[:, 0].max(), front[:, 1].max()]
    np.testing.assert_allclose(lo, expected_lo, atol=0.03 * scale)
    np.testing.assert_allclose(hi, expected_hi, atol=0.03 * scale)
    # and its silhouette, seen from the front in world space, is the drawn L
    world_front = views.View("front", views.FRONT.direction, views.FRONT.right, views.FRONT.up, scale)
    local = result.vertices - [centre[0], 0.0, centre[2]]
    drawn = fill_silhouette(rasterize_strokes([np.column_stack([s[:, :2] - centre[[0, 2]], s[:, 2]])
                                                        for s in moved["front"]], extent=scale))
    assert silhouette_iou(local, result.faces, drawn, world_front) >= 0.90


def test_png_sketches_reconstruct_in_the_canvas_frame(tmp_path, sketches):
    inks = {}
    for view, strokes in sketches["box"].items():
        ink = rasterize_strokes(strokes, res=512, width_px=3.0)
        path = tmp_path / f"{view}.png"
        Image.fromarray((255 * (1.0 - ink)).astype(np.uint8)).save(path)
        inks[view] = load_png_sketch(path)
    result = pipeline.reconstruct_images(inks, detail="low")
    np.testing.assert_allclose(result.vertices.min(axis=0), [-0.5, -0.3, -0.7], atol=0.03)
    np.testing.assert_allclose(result.vertices.max(axis=0), [0.5, 0.3, 0.6], atol=0.03)
    for view in ("front", "side"):
        assert silhouette_iou(result.vertices, result.faces, result.silhouettes[view], views.INPUT_VIEWS[view]) >= 0.90


def test_progress_is_reported_in_order_and_can_cancel(sketches):
    seen = []
    pipeline.reconstruct_strokes(sketches["sphere"], detail="low", progress=lambda m, f: seen.append((m, f)))
    fractions = [f for _, f in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions) and len(seen) >= 4
    assert all(isinstance(m, str) and m for m, _ in seen)

    class Cancelled(Exception):
        pass

    def cancel(message, fraction):
        if fraction > 0.1:
            raise Cancelled()

    with pytest.raises(Cancelled):
        pipeline.reconstruct_strokes(sketches["sphere"], progress=cancel)


def test_the_round_backend_is_the_default(sketches):
    result = pipeline.reconstruct_strokes(sketches["sphere"], detail="low")
    assert result.backend == "round"
    assert closed_and_oriented(result.faces) and signed_volume(result.vertices, result.faces) > 0


def _bad_sketches(sketches, circle):
    """Sketches whose geometry cannot make a mesh. Malformed strokes (NaN, single points,
    too many points) never reach the pipeline: the service edge refuses them
    (``protocol.check_strokes``, tested in test_server and the add-on's test_protocol)."""
    sphere = sketches["sphere"]
    speck = np.array([[0.0, 0.0, 1.0], [0.004, 0.0, 1.0]])
    return {
        "only a top view": {"top": sphere["front"]},
        "only specks": {"front": [speck], "side": sphere["side"]},
        "no common volume": {"front": [circle(0.2, 0.0, 0.7)], "side": [circle(0.2, 0.0, -0.7)]},
    }


@pytest.mark.parametrize("case", ["only a top view", "only specks", "no common volume"])
def test_bad_sketches_raise_bad_input(sketches, circle, case):
    with pytest.raises(Refused) as err:
        pipeline.reconstruct_strokes(_bad_sketches(sketches, circle)[case])
    assert err.value.code == "bad_input" and "\n" not in err.value.message


def test_bad_images_raise_bad_input():
    blank = np.zeros((256, 256), np.float32)
    with pytest.raises(Refused) as err:
        pipeline.reconstruct_images({"front": blank, "side": blank})
    assert err.value.code == "bad_input"
    with pytest.raises(Refused) as err:
        pipeline.reconstruct_images({"front": blank})
    assert err.value.code == "bad_input"


def _line(*points) -> np.ndarray:
    return np.array([[u, v, 1.0] for u, v in points])


def _lamp(circle):
    """A shade, a stem drawn as one line, and a flat base drawn as a narrow outline."""
    view = [circle(0.35, 0.0, 0.45), _line((0.0, 0.1), (0.0, -0.75)),
            _line((-0.4, -0.75), (0.4, -0.75), (0.4, -0.8), (-0.4, -0.8), (-0.4, -0.75))]
    return {"front": view, "side": [s.copy() for s in view]}


def _table():
    """A top drawn as a narrow outline and legs drawn as single lines."""
    view = [_line((-0.7, 0.3), (0.7, 0.3), (0.7, 0.24), (-0.7, 0.24), (-0.7, 0.3)),
            _line((-0.62, 0.24), (-0.62, -0.6)), _line((0.62, 0.24), (0.62, -0.6))]
    return {"front": view, "side": [s * [0.6, 1.0, 1.0] for s in view]}


def _covered(vertices, faces, view: str, u: float, v: float) -> bool:
    """Whether the mesh's silhouette covers canvas point (u, v) (within a pixel)."""
    from model_server.geometry.raycast import render_silhouette

    mask = render_silhouette(vertices, faces, views.INPUT_VIEWS[view])
    row, col = (int(round(x)) for x in views.plane_to_pixel(u, v, 1.0, mask.shape[0]))
    return bool(mask[row - 1:row + 2, col - 1:col + 2].any())


def _airplane(circle):
    """From the front: a round fuselage, wings seen edge-on as a slim outline, a fin as one
    line; from the side: a long fuselage, the wing as one line, the fin as a slim outline."""
    front = [circle(0.15, n=80), _line((-0.9, 0.0), (0.9, 0.0), (0.9, -0.03), (-0.9, -0.03), (-0.9, 0.0)),
             _line((0.0, 0.15), (0.0, 0.5))]
    side = [circle(0.8, sy=0.19, n=160), _line((-0.2, -0.015), (0.25, -0.015)),
            _line((-0.75, 0.1), (-0.6, 0.5), (-0.55, 0.5), (-0.6, 0.1))]
    return {"front": front, "side": side}


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["lamp", "table", "airplane"])
def test_thin_parts_drawn_as_lines_survive_fusion_and_fitting(circle, shape):
    sketch = {"lamp": lambda: _lamp(circle), "table": _table, "airplane": lambda: _airplane(circle)}[shape]()
    probes = {"lamp": [(0.0, -0.3), (0.0, -0.6), (0.3, -0.77)], "table": [(-0.62, -0.2), (0.62, -0.5)],
              "airplane": [(0.8, -0.015), (-0.6, -0.015), (0.0, 0.4)]}[shape]
    result = pipeline.reconstruct_strokes(sketch, detail="medium")
    assert closed_and_oriented(result.faces)
    fitted = pipeline.fit_strokes(result.vertices, result.faces, sketch, iterations=60)
    frame = pipeline.fit_normalization({v: s for v, s in sketch.items()})
    for vertices in (result.vertices, fitted.vertices):
        canonical = frame.to_canonical(vertices)
        for u, v in probes:
            canonical_u, canonical_v = ((np.array([u, v]) - frame.centre[[0, 2]]) * frame.scale)
            assert _covered(canonical, result.faces, "front", canonical_u, canonical_v), (u, v)
    assert min(fitted.summary["iou_after"].values()) >= 0.9


@pytest.mark.slow
def test_a_side_drawn_a_little_short_is_lined_up_with_the_front(circle):
    front, side = circle(0.5), circle(0.5, 0.0, 0.02, sy=0.93)
    result = pipeline.reconstruct_strokes({"front": [front], "side": [side]}, detail="low")
    (note,) = result.notes
    assert note.startswith("The side view was scaled by ") and note.endswith(" to match the front's height.")
    assert float(note.split()[6]) == pytest.approx(1 / 0.93, abs=0.01)
    height = result.vertices[:, 2].max() - result.vertices[:, 2].min()
    assert height == pytest.approx(1.0, abs=0.03)                      # the front's height, nothing cut off
    front_only = pipeline.reconstruct_strokes({"front": [front], "side": [circle(0.5)]}, detail="low")
    assert front_only.notes == []
    too_short = pipeline.reconstruct_strokes({"front": [front], "side": [circle(0.5, sy=0.8)]}, detail="low")
    assert too_short.notes[0].startswith("The front and side views differ in height by 20%")
    height = too_short.vertices[:, 2].max() - too_short.vertices[:, 2].min()
    assert height == pytest.approx(0.8, abs=0.03)                      # left as drawn: the shared height


@pytest.mark.slow
def test_one_view_alone_is_inflated_and_says_a_second_view_helps(circle):
    result = pipeline.reconstruct_strokes({"front": [circle(0.5)]}, detail="low")
    assert result.backend == "inflate" and closed_and_oriented(result.faces)
    assert result.notes == [pipeline.ONE_VIEW_NOTE.format(drawn="front", missing="side")]
    depth = result.vertices[:, 1].max() - result.vertices[:, 1].min()
    assert 0.6 <= depth <= 1.05                                        # round, not flat: about as deep as wide
    learned = pipeline.reconstruct_strokes({"side": [circle(0.5)]}, backend="learned", detail="low")
    assert learned.backend == "inflate"                                # inflating needs no backend


def test_a_poisson_surface_that_will_not_close_is_retried(monkeypatch, sketches):
    """Fault injection: the first Poisson surface is treated as open; fusion says which way worked."""
    from model_server.reconstruct import fusion

    real, calls = fusion.trim_and_clean, []

    def first_fails(*args):
        calls.append(1)
        if len(calls) == 1:
            raise fusion.NotClosed("bad_input", fusion.NOT_CLOSED)
        return real(*args)

    monkeypatch.setattr(fusion, "trim_and_clean", first_fails)
    result = pipeline.reconstruct_strokes(sketches["box"], detail="low")
    assert result.fusion.startswith(fusion.ATTEMPTS[1][0]) and closed_and_oriented(result.faces)


def test_when_no_poisson_surface_closes_the_hull_surface_is_used(monkeypatch, sketches):
    from model_server.reconstruct import fusion

    def never(*args, **kwargs):
        raise fusion.NotClosed("bad_input", fusion.NOT_CLOSED)

    monkeypatch.setattr(fusion, "fuse", never)
    result = pipeline.reconstruct_strokes(sketches["box"], detail="low")
    assert result.fusion == pipeline.HULL_FALLBACK
    assert closed_and_oriented(result.faces) and signed_volume(result.vertices, result.faces) > 0
    assert signed_volume(result.vertices, result.faces) == pytest.approx(1.0 * 0.6 * 1.3, rel=0.05)

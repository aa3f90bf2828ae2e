import numpy as np
import pytest

from model_server.geometry import views
from model_server.geometry.views import FRONT, INPUT_VIEWS, SIDE, TOP, VIEWS


def test_fourteen_views_front_side_then_icosahedron():
    assert len(VIEWS) == 14 == views.NUM_VIEWS
    assert VIEWS[0] is FRONT and VIEWS[1] is SIDE
    assert views.RESOLUTION == 256
    assert FRONT.extent == SIDE.extent == TOP.extent == 1.0
    assert all(v.extent == pytest.approx(np.sqrt(3.0)) for v in VIEWS[2:])


@pytest.mark.parametrize("view, direction, right, up", [
    (FRONT, [0, 1, 0], [1, 0, 0], [0, 0, 1]),
    (SIDE, [-1, 0, 0], [0, 1, 0], [0, 0, 1]),
    (TOP, [0, 0, -1], [1, 0, 0], [0, 1, 0]),
], ids=["front", "side", "top"])
def test_input_view_axes_follow_the_contract(view, direction, right, up):
    np.testing.assert_allclose(view.direction, direction)
    np.testing.assert_allclose(view.right, right)
    np.testing.assert_allclose(view.up, up)
    assert INPUT_VIEWS[view.name] is view


@pytest.mark.parametrize("view", list(VIEWS) + [TOP], ids=lambda v: v.name)
def test_camera_frames_are_right_handed_orthonormal(view):
    r = view.rotation
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.cross(view.right, view.up), -view.direction, atol=1e-12)


def test_icosahedron_cameras_are_regular():
    cams = np.array([-v.direction for v in VIEWS[2:]])
    cos = cams @ cams.T
    off = cos[~np.eye(12, dtype=bool)].reshape(12, 11)
    # each vertex has 5 neighbours at arccos(1/sqrt5), 5 at -1/sqrt5 and one antipode
    assert np.all(np.isclose(off, 1 / np.sqrt(5)).sum(axis=1) == 5)
    assert np.all(np.isclose(off, -1).sum(axis=1) == 1)


@pytest.mark.parametrize("view", VIEWS[:3], ids=lambda v: v.name)
def test_project_unproject_round_trip(view):
    rng = np.random.default_rng(0)
    p = rng.uniform(-0.9, 0.9, (100, 3))
    rows, cols, depth = views.project(view, p)
    np.testing.assert_allclose(views.unproject(view, rows, cols, depth), p, atol=1e-12)


def test_pixel_convention_row0_is_top_col0_is_left():
    rows, cols, depth = views.project(FRONT, np.array([[-1.0, 0.3, 1.0], [1.0, -0.2, -1.0]]), res=256)
    np.testing.assert_allclose(rows, [-0.5, 255.5])
    np.testing.assert_allclose(cols, [-0.5, 255.5])
    np.testing.assert_allclose(depth, [0.3, -0.2])
    u, v = views.plane_grid(FRONT, 4)
    np.testing.assert_allclose(u[0], [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(v[:, 0], [0.75, 0.25, -0.25, -0.75])


def test_normals_frame_round_trip():
    n = np.array([[0.0, -1.0, 0.0]])  # facing the front camera
    np.testing.assert_allclose(views.normals_to_camera(FRONT, n), [[0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(views.normals_to_world(VIEWS[5], views.normals_to_camera(VIEWS[5], n)), n, atol=1e-12)

import numpy as np
import open3d as o3d
import pytest

from model_server.geometry import views
from model_server.geometry.raycast import render_maps, render_silhouette


@pytest.fixture(scope="module")
def sphere():
    mesh = o3d.geometry.TriangleMesh.create_sphere(0.7, 60)
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


@pytest.fixture(scope="module")
def sphere_maps(sphere):
    return render_maps(*sphere, res=128)


@pytest.mark.parametrize("index", [0, 1, 4, 13])
def test_back_projected_depth_lands_on_the_surface(sphere_maps, index):
    view = views.VIEWS[index]
    rows, cols = np.nonzero(sphere_maps.mask[index] > 0.5)
    points = views.unproject(view, rows, cols, sphere_maps.depth[index][rows, cols], res=128)
    assert np.abs(np.linalg.norm(points, axis=1) - 0.7).max() < view.pixel_size(128)


@pytest.mark.parametrize("index", [0, 1, 7])
def test_normals_are_unit_outward_in_camera_frame(sphere_maps, index):
    view = views.VIEWS[index]
    fg = sphere_maps.mask[index] > 0.5
    rows, cols = np.nonzero(fg)
    points = views.unproject(view, rows, cols, sphere_maps.depth[index][fg], res=128)
    normals = sphere_maps.normal[index][fg]
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    assert normals[:, 2].min() >= 0.0
    expected = points / np.linalg.norm(points, axis=1, keepdims=True)
    assert np.abs(views.normals_to_world(view, normals) - expected).max() < 0.02  # smooth, not faceted


def test_background_is_zero_and_silhouette_matches_disc(sphere, sphere_maps):
    assert sphere_maps.depth.shape == (14, 128, 128) and sphere_maps.normal.shape == (14, 128, 128, 3)
    assert np.all(sphere_maps.depth[sphere_maps.mask == 0] == 0)
    silhouette = render_silhouette(*sphere, views.FRONT, 256)
    assert silhouette.sum() == pytest.approx(np.pi * (0.7 * 128) ** 2, rel=0.02)

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


def _sphere_mesh(radius: float, n: int = 48, open_top: bool = False):
    """A closed sphere from surface nets, or a bowl: its faces above z = 0.3·radius removed."""
    from model_server.geometry.surface_nets import surface_nets

    axis = np.linspace(-1.0, 1.0, n)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    vertices, faces = surface_nets((np.sqrt(x * x + y * y + z * z) - radius).astype(np.float32), -1.0, 2.0 / (n - 1))
    if open_top:
        faces = faces[vertices[faces].mean(axis=1)[:, 2] < 0.3 * radius]
    return vertices, faces


def test_grid_occupancy_is_exact_on_a_closed_mesh_and_keeps_an_open_one_thin():
    from model_server.geometry.raycast import grid_occupancy

    axis = np.linspace(-1.0, 1.0, 40)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    radius = np.sqrt(x * x + y * y + z * z)
    inside = grid_occupancy(*_sphere_mesh(0.6), axis)
    clear = np.abs(radius - 0.6) > 0.02            # away from the faceted surface
    assert np.array_equal(inside[clear], (radius < 0.6)[clear])
    bowl = grid_occupancy(*_sphere_mesh(0.6, open_top=True), axis)
    assert not bowl[radius < 0.5].any()              # an open container stays hollow ...
    assert not bowl[radius > 0.7].any()              # ... nothing outside it is filled (no streaks) ...
    shell = (np.abs(radius - 0.6) < 0.03) & (z < 0)
    assert bowl[shell].mean() > 0.5                  # ... and its single-sided wall is kept as a thin solid

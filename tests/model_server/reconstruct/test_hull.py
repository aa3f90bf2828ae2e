import numpy as np
import open3d as o3d
import pytest

from model_server.errors import Refused
from model_server.geometry import views
from model_server.geometry.mesh import closed_and_oriented, signed_volume
from model_server.reconstruct.backends import hull
from model_server.sketch.rasterize import rasterize_strokes
from model_server.sketch.silhouette import iou
from model_server.sketch.silhouette import fill_silhouette


def silhouettes_of(sketch):
    return {view: fill_silhouette(rasterize_strokes(strokes)) for view, strokes in sketch.items()}


@pytest.fixture(scope="module")
def mug_maps(sketches):
    silhouettes = silhouettes_of(sketches["mug"])
    return silhouettes, hull.HullField(silhouettes), hull.hull_maps(silhouettes)


@pytest.mark.parametrize("index", range(14))
def test_back_projected_depth_lies_on_the_hull_within_a_pixel(mug_maps, index):
    _, field, maps = mug_maps
    view = views.VIEWS[index]
    rows, cols = np.nonzero(maps.mask[index] > 0.5)
    assert len(rows) > 500
    points = views.unproject(view, rows, cols, maps.depth[index][rows, cols])
    assert np.abs(field.value(points)).max() <= view.pixel_size()


def test_input_views_show_the_input_silhouettes(mug_maps):
    silhouettes, _, maps = mug_maps
    assert iou(maps.mask[0] > 0.5, silhouettes["front"]) > 0.98
    assert iou(maps.mask[1] > 0.5, silhouettes["side"]) > 0.98


def test_normals_are_unit_and_face_the_viewer(mug_maps):
    _, _, maps = mug_maps
    fg = maps.mask > 0.5
    np.testing.assert_allclose(np.linalg.norm(maps.normal[fg], axis=-1), 1.0, atol=1e-5)
    assert maps.normal[fg][:, 2].min() >= 0.0
    assert np.all(maps.normal[~fg] == 0)


def test_box_hull_normals_are_axis_aligned_on_faces(polygon):
    square = [polygon([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)])]
    maps = hull.hull_maps(silhouettes_of({"front": square, "side": square}))
    centre = maps.normal[0, 100:156, 100:156].reshape(-1, 3)
    np.testing.assert_allclose(centre, np.tile([0.0, 0.0, 1.0], (len(centre), 1)), atol=1e-3)
    depth = maps.depth[0, 100:156, 100:156]
    np.testing.assert_allclose(depth, -0.5, atol=0.5 * views.FRONT.pixel_size())


def test_surface_nets_mesh_is_closed_and_outward(circle):
    field = hull.HullField(silhouettes_of({"front": [circle(0.6)], "side": [circle(0.6)]}))
    vertices, faces = hull.hull_mesh(field, 64)
    assert closed_and_oriented(faces)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(faces))
    assert mesh.is_edge_manifold(allow_boundary_edges=False)
    # the hull of two 0.6-discs is a Steinmetz solid, volume 16/3 r^3
    assert signed_volume(vertices, faces) == pytest.approx(16 / 3 * 0.6**3, rel=0.03)


def test_top_view_carves_the_hull(circle, polygon):
    square = [polygon([(-0.6, -0.6), (0.6, -0.6), (0.6, 0.6), (-0.6, 0.6)])]
    box = hull.hull_maps(silhouettes_of({"front": square, "side": square}))
    cylinder = hull.hull_maps(silhouettes_of({"front": square, "side": square, "top": [circle(0.6)]}))
    assert sum((cylinder.mask[2:] > 0.5).sum(axis=(1, 2))) < 0.95 * sum((box.mask[2:] > 0.5).sum(axis=(1, 2)))


def test_views_that_share_no_volume_are_bad_input(circle):
    with pytest.raises(Refused) as err:
        hull.hull_maps(silhouettes_of({"front": [circle(0.2, 0.0, 0.7)], "side": [circle(0.2, 0.0, -0.7)]}))
    assert err.value.code == "bad_input"

import numpy as np
import open3d as o3d
import pytest

from model_server.errors import Refused
from model_server.evaluation.metrics import silhouette_iou
from model_server.geometry import views
from model_server.geometry.maps import Maps
from model_server.geometry.mesh import closed_and_oriented, signed_volume
from model_server.geometry.normalize import fit_normalization
from model_server.reconstruct import fusion
from model_server.reconstruct import pipeline
from model_server.reconstruct.backends import hull
from model_server.sketch.rasterize import rasterize_strokes
from model_server.sketch.silhouette import fill_silhouette


@pytest.fixture(scope="module")
def box_maps(polygon):
    front = fill_silhouette(rasterize_strokes([polygon([(-0.5, -0.7), (0.5, -0.7), (0.5, 0.6), (-0.5, 0.6)])]))
    side = fill_silhouette(rasterize_strokes([polygon([(-0.3, -0.7), (0.3, -0.7), (0.3, 0.6), (-0.3, 0.6)])]))
    return hull.hull_maps({"front": front, "side": side})


def test_points_are_oriented_outward(box_maps):
    points, normals, source = fusion.oriented_points(box_maps)
    assert len(points) == len(normals) == len(source) > 10_000
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    # on a box centred at (0, 0, -0.05) outward normals point away from the centre
    assert np.mean(np.einsum("ij,ij->i", normals, points - [0, 0, -0.05]) > 0) > 0.99


def test_consistent_maps_lose_almost_nothing_to_pruning(box_maps):
    points, _, source = fusion.oriented_points(box_maps)
    assert fusion.consistent(points, source, box_maps).mean() > 0.97


def test_points_other_views_contradict_are_pruned(box_maps):
    maps = Maps(box_maps.depth.copy(), box_maps.normal.copy(), box_maps.mask.copy())
    # view 5 wrongly claims a blob of surface far outside the box, and a dent too near the camera
    maps.mask[5, 10:40, 10:40] = 1.0
    maps.depth[5, 10:40, 10:40] = 0.0
    maps.normal[5, 10:40, 10:40] = [0.0, 0.0, 1.0]
    rows, cols = np.nonzero(box_maps.mask[5] > 0.5)
    dent = (rows[:200], cols[:200])
    maps.depth[5][dent] -= 0.3
    points, _, source = fusion.oriented_points(maps)
    keep = fusion.consistent(points, source, maps)
    blob = views.unproject(views.VIEWS[5], *np.nonzero(np.pad(np.ones((30, 30), bool), ((10, 216), (10, 216)))),
                           np.zeros(900))
    blob_ids = np.flatnonzero((source == 5) & np.isin(points[:, 0], blob[:, 0]) & np.isin(points[:, 2], blob[:, 2]))
    assert len(blob_ids) > 0 and not keep[blob_ids].any()
    dent_points = views.unproject(views.VIEWS[5], *dent, maps.depth[5][dent])
    dent_ids = np.flatnonzero((source == 5) & np.isin(points[:, 1], dent_points[:, 1]))
    assert len(dent_ids) > 0 and keep[dent_ids].mean() < 0.1
    assert keep[source != 5].mean() > 0.97


@pytest.mark.parametrize("detail", ["low", "medium"])
def test_fused_mesh_is_watertight_outward_and_clean(box_maps, detail):
    fused = fusion.fuse(box_maps, detail)
    vertices, faces = fused.vertices, fused.faces
    assert vertices.dtype == np.float32 and faces.dtype == np.int32
    assert fused.fuse_s > 0 and fused.poisson_s > 0
    assert fused.step == f"Poisson (octree depth {fusion.DETAILS[detail].poisson_depth})"
    assert closed_and_oriented(faces)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices.astype(np.float64)),
                                     o3d.utility.Vector3iVector(faces))
    assert mesh.is_watertight() and mesh.is_orientable()
    assert len(mesh.cluster_connected_triangles()[2]) == 1
    area = np.linalg.norm(np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]), axis=1)
    assert area.min() > 0 and len(np.unique(np.sort(faces, axis=1), axis=0)) == len(faces)
    assert signed_volume(vertices, faces) == pytest.approx(1.0 * 0.6 * 1.3, rel=0.03)


def test_crossing_triangles_finds_a_piercing_pair():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.2, 0.2, -0.5], [0.3, 0.2, 0.5], [0.2, 0.3, 0.5]], float)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    assert set(fusion.crossing_triangles(vertices, faces)) == {0, 1}
    assert len(fusion.crossing_triangles(vertices, faces[:1])) == 0


def test_maps_with_nothing_usable_are_bad_input():
    empty = Maps.empty(64)
    with pytest.raises(Refused) as err:
        fusion.fuse(empty)
    assert err.value.code == "bad_input"


def test_downsampling_keeps_the_two_sides_of_a_thin_wall_apart():
    # a wall 0.01 thick, far thinner than a voxel: its two faces must stay two layers of points
    rng = np.random.default_rng(0)
    yz = rng.uniform(-0.3, 0.3, (2000, 2))
    front = np.column_stack([np.full(2000, -0.005), yz])
    back = np.column_stack([np.full(2000, 0.005), yz])
    normals = np.repeat([[-1.0, 0, 0], [1.0, 0, 0]], 2000, axis=0)
    cloud = fusion.downsample(np.concatenate([front, back]), normals, 2.0 / 64)
    n = np.asarray(cloud.normals)
    np.testing.assert_allclose(np.abs(n[:, 0]), 1.0)
    assert (n[:, 0] < 0).sum() == (n[:, 0] > 0).sum() > 50


def test_thin_parts_are_sampled_finer(box_maps):
    points, _, _ = fusion.oriented_points(box_maps)
    assert fusion.thin_parts(points, box_maps, 2.0 / 64).mean() < 0.1   # the corners only
    stem = np.zeros((256, 256), bool)
    stem[20:236, 126:129] = True   # a column 3 pixels (0.023) wide
    stem_maps = hull.hull_maps({"front": stem, "side": stem})
    points, normals, _ = fusion.oriented_points(stem_maps)
    thin = fusion.thin_parts(points, stem_maps, 2.0 / 64)
    assert thin.mean() > 0.9
    coarse = fusion.downsample(points, normals, 2.0 / 64)
    fine = fusion.downsample(points, normals, 2.0 / 64, thin)
    assert len(fine.points) > 1.5 * len(coarse.points)


def test_trim_keeps_every_well_supported_component():
    # a big and a small sphere, as Poisson leaves a base its thin stem no longer reaches
    big = o3d.geometry.TriangleMesh.create_sphere(0.5, 40)
    small = o3d.geometry.TriangleMesh.create_sphere(0.2, 20).translate((0, 0, -0.9))
    speck = o3d.geometry.TriangleMesh.create_sphere(0.01, 3).translate((0.9, 0, 0))
    cut = o3d.geometry.TriangleMesh.create_sphere(0.2, 20).translate((0, 0, 0.9))   # open, as at the octree's edge
    cut.triangles = o3d.utility.Vector3iVector(np.asarray(cut.triangles)[10:])
    mesh = big + small + speck + cut
    density = np.ones(len(mesh.vertices))
    vertices, faces = fusion.trim_and_clean(mesh, density, 100_000)
    assert closed_and_oriented(faces) and signed_volume(vertices, faces) > 0
    assert vertices[:, 2].min() < -1.05    # the small sphere stays
    assert vertices[:, 0].max() < 0.6 and vertices[:, 2].max() < 0.6   # the speck and the open piece go


def test_trim_keeps_a_component_whose_sheets_touch():
    """A base of two blocks that meet along an edge (four faces share it, as marching cubes
    leaves where parts come within a cell): closed once the sheets are split, so it stays."""
    main = o3d.geometry.TriangleMesh.create_sphere(0.5, 10)
    blocks = [o3d.geometry.TriangleMesh.create_box(0.2, 0.2, 0.2).translate(origin)
              for origin in ((-0.2, -0.2, -1.0), (0.0, 0.0, -1.0))]
    base = (blocks[0] + blocks[1]).merge_close_vertices(1e-9)
    assert not closed_and_oriented(np.asarray(base.triangles))
    mesh = main + base
    vertices, faces = fusion.trim_and_clean(mesh, np.ones(len(mesh.vertices)), 100_000, relax=False)
    assert closed_and_oriented(faces)
    assert vertices[:, 2].min() < -0.95    # the base stays


def _lamp(polygon, stem: float) -> dict[str, list[np.ndarray]]:
    """A lathe lamp's outline, the same in front and side: a flat base, a stem ``stem`` wide and a shade."""
    h = 0.5 * stem
    outline = polygon([(-0.4, -0.8), (0.4, -0.8), (0.4, -0.72), (h, -0.72), (h, 0.2), (0.6, 0.2), (0.3, 0.8),
                       (-0.3, 0.8), (-0.6, 0.2), (-h, 0.2), (-h, -0.72), (-0.4, -0.72)], 8)
    return {"front": [outline], "side": [outline]}


def _chair(polygon, leg: float) -> dict[str, list[np.ndarray]]:
    """A chair with legs ``leg`` wide: front shows seat and back as one rectangle on two legs, side an L on two legs."""
    front = polygon([(-0.5, -0.8), (-0.5 + leg, -0.8), (-0.5 + leg, -0.1), (0.5 - leg, -0.1), (0.5 - leg, -0.8),
                     (0.5, -0.8), (0.5, 0.8), (-0.5, 0.8)], 8)
    side = polygon([(-0.4, -0.8), (-0.4 + leg, -0.8), (-0.4 + leg, -0.1), (0.4 - leg, -0.1), (0.4 - leg, -0.8),
                    (0.4, -0.8), (0.4, 0.8), (0.32, 0.8), (0.32, 0.0), (-0.4, 0.0)], 8)
    return {"front": [front], "side": [side]}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["hull", "round"])
@pytest.mark.parametrize("shape", ["lamp", "chair"])
def test_thin_parts_survive_reconstruction(polygon, shape, backend):
    """A stem / legs 0.02 wide (under 3 pixels, less than a voxel): the base and the feet must stay.

    The round backend makes the legs round tubes 2.5 pixels across, which Poisson at this
    depth draws about a pixel thinner (the chair's side silhouette IoU: 0.90 against the
    hull's square bars' 0.98), so for it every thin pixel drawn must be covered instead."""
    sketch = _lamp(polygon, 0.02) if shape == "lamp" else _chair(polygon, 0.02)
    result = pipeline.reconstruct_strokes(sketch, backend=backend)
    assert closed_and_oriented(result.faces) and signed_volume(result.vertices, result.faces) > 0
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(result.vertices.astype(np.float64)),
                                     o3d.utility.Vector3iVector(result.faces))
    assert mesh.is_watertight()
    assert result.vertices[:, 2].min() == pytest.approx(-0.8, abs=0.03)
    canonical = fit_normalization(sketch).to_canonical(result.vertices)
    if backend == "round":
        assert pipeline.outline_match(canonical, result.faces, result.silhouettes, result.thin)[1] == 1.0
        return
    for view in ("front", "side"):
        assert silhouette_iou(canonical, result.faces, result.silhouettes[view], views.INPUT_VIEWS[view]) >= 0.90

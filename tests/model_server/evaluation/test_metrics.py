"""The evaluation metrics on cases whose answer is known exactly."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest
from scipy.spatial.transform import Rotation

from model_server.evaluation import metrics
from model_server.geometry.views import FRONT
from model_server.sketch.rasterize import rasterize_strokes


def sphere(radius: float, centre=(0.0, 0.0, 0.0), resolution: int = 60) -> tuple[np.ndarray, np.ndarray]:
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius, resolution=resolution)
    return np.asarray(mesh.vertices) + np.asarray(centre), np.asarray(mesh.triangles)


def box(half: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    mesh = o3d.geometry.TriangleMesh.create_box(*(2.0 * np.asarray(half)))
    return np.asarray(mesh.vertices) - np.asarray(half), np.asarray(mesh.triangles)


def samples(mesh, n: int = 20_000, seed: int = 0):
    return metrics.sample_surface(*mesh, n, np.random.default_rng(seed))


def test_sample_surface_is_area_weighted_and_on_the_surface():
    # Two separate squares in planes z=0 (side 1) and z=3 (side 2): 1/5 of the area, 4/5.
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 3], [2, 0, 3], [2, 2, 3], [0, 2, 3]], float)
    f = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    points, normals = metrics.sample_surface(v, f, 50_000, np.random.default_rng(1))
    low = np.isclose(points[:, 2], 0.0)
    assert np.all(low | np.isclose(points[:, 2], 3.0))
    assert low.mean() == pytest.approx(0.2, abs=0.01)
    assert points[low, :2].min() >= 0.0 and points[low, :2].max() <= 1.0
    assert points[~low, :2].min() >= 0.0 and points[~low, :2].max() <= 2.0
    np.testing.assert_allclose(normals, np.tile([0.0, 0.0, 1.0], (len(points), 1)), atol=1e-12)


def test_sampling_is_reproducible_from_the_generator():
    mesh = sphere(0.8)
    np.testing.assert_array_equal(samples(mesh, 1000, seed=3)[0], samples(mesh, 1000, seed=3)[0])


def test_identical_meshes_score_perfectly():
    mesh = sphere(0.8)
    pts, normals = samples(mesh)
    assert metrics.chamfer(pts, pts) == 0.0
    assert metrics.f_score(pts, pts, metrics.F_SCORE_THRESHOLDS["1%"]) == 1.0
    assert metrics.normal_consistency(pts, normals, pts, normals) == pytest.approx(1.0)
    assert metrics.volumetric_iou(mesh, mesh) == 1.0


def test_independent_samples_of_one_mesh_score_near_perfect():
    mesh = sphere(0.8)
    (a, an), (b, bn) = samples(mesh, seed=1), samples(mesh, seed=2)
    assert metrics.chamfer(a, b) < 0.015           # the sampling floor: ~half the sample spacing
    assert metrics.f_score(a, b, metrics.F_SCORE_THRESHOLDS["2%"]) > 0.99
    assert metrics.normal_consistency(a, an, b, bn) > 0.99


@pytest.mark.parametrize("d", [0.1, 0.2])
def test_shifted_sphere_chamfer_is_half_the_shift(d):
    # For a sphere of radius r and its copy shifted by d < r, a uniform point's distance to the
    # other sphere is |sqrt(r^2 + d^2 - 2 r d u) - r| with u = cos(angle) uniform on [-1, 1];
    # its mean integrates to exactly d / 2, in both directions.
    a, _ = samples(sphere(0.8), 100_000, seed=1)
    b, _ = samples(sphere(0.8, centre=(d, 0.0, 0.0)), 100_000, seed=2)
    assert metrics.chamfer(a, b) == pytest.approx(d / 2, rel=0.05)


def test_shifted_sphere_f_score_is_threshold_over_shift():
    # Same geometry: the share of points within t of the other sphere is exactly t / d (t < d),
    # so precision = recall = F = t / d.
    d, t = 0.2, metrics.F_SCORE_THRESHOLDS["2%"]
    a, _ = samples(sphere(0.8), 100_000, seed=1)
    b, _ = samples(sphere(0.8, centre=(d, 0.0, 0.0)), 100_000, seed=2)
    assert metrics.f_score(a, b, t) == pytest.approx(t / d, abs=0.02)


def test_f_score_is_zero_when_nothing_is_within_reach():
    a, _ = samples(sphere(0.3))
    b, _ = samples(sphere(0.3, centre=(1.0, 0.0, 0.0)))
    assert metrics.f_score(a, b, 0.04) == 0.0


def test_frame_thresholds_are_one_and_two_percent_of_the_canonical_frame():
    assert metrics.F_SCORE_THRESHOLDS == {"1%": pytest.approx(0.02), "2%": pytest.approx(0.04)}


def test_normal_consistency_ignores_orientation_but_sees_shape():
    ball = sphere(0.8)
    pts, normals = samples(ball)
    inside_out = (ball[0], ball[1][:, ::-1])
    flipped_pts, flipped_normals = samples(inside_out)
    assert metrics.normal_consistency(pts, normals, flipped_pts, flipped_normals) > 0.99
    cube_pts, cube_normals = samples(box((0.7, 0.7, 0.7)))
    assert metrics.normal_consistency(pts, normals, cube_pts, cube_normals) < 0.9


def test_scaled_sphere_volume_iou_is_the_volume_ratio():
    small, large = sphere(0.5), sphere(0.8)
    expected = (0.5 / 0.8) ** 3
    assert metrics.volumetric_iou(small, large) == pytest.approx(expected, abs=0.01)
    assert metrics.volumetric_iou(small, large, bounds=(-1.0, 1.0)) == pytest.approx(expected, abs=0.01)


def test_disjoint_volumes_have_zero_iou():
    assert metrics.volumetric_iou(sphere(0.3, (-0.5, 0, 0)), sphere(0.3, (0.5, 0, 0))) == 0.0


def test_volume_iou_of_boxes_overlapping_by_half():
    # Two 1 x 1 x 1 boxes offset by half a side along x: intersection 0.5, union 1.5. The
    # overlap's edges fall between cell centres, so allow one cell layer in 64.
    a = box((0.5, 0.5, 0.5))
    b = (a[0] + [0.5, 0.0, 0.0], a[1])
    assert metrics.volumetric_iou(a, b) == pytest.approx(1 / 3, abs=1 / 64)


def test_sketch_silhouette_iou_against_the_drawn_outline(circle):
    ink = rasterize_strokes([circle(0.6)])
    assert metrics.sketch_silhouette_iou(*sphere(0.6), ink, FRONT) > 0.97
    assert metrics.sketch_silhouette_iou(*sphere(0.4), ink, FRONT) == pytest.approx((0.4 / 0.6) ** 2, abs=0.03)


def lumpy(mesh, amplitude: float, waves: int) -> tuple[np.ndarray, np.ndarray]:
    """A sphere's mesh with radial bumps: ``amplitude`` high, ``waves`` to a turn in both angles."""
    v, f = mesh
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    bumps = np.sin(waves * np.arctan2(u[:, 1], u[:, 0])) * np.sin(waves * np.arccos(np.clip(u[:, 2], -1.0, 1.0)))
    return v + amplitude * bumps[:, None] * u, f


def test_normal_consistency_counts_lumps_that_chamfer_barely_sees():
    # The smooth copy is turned a few degrees and its vertices jittered by 0.002 (0.1% of the
    # frame), so its facets disagree with the original's a little; the lumpy copy has bumps
    # 2.5% of the radius high, which move the surface little but tilt its normals by up to ~17°.
    ball = sphere(0.8)
    turn = Rotation.from_rotvec([0.05, 0.08, 0.03]).as_matrix()
    smooth = (ball[0] @ turn.T + np.random.default_rng(5).normal(0.0, 0.002, ball[0].shape), ball[1])
    pts, normals = samples(ball, seed=1)
    smooth_pts, smooth_normals = samples(smooth, seed=2)
    lumpy_pts, lumpy_normals = samples(lumpy(smooth, 0.02, 12), seed=2)
    nc_smooth = metrics.normal_consistency(pts, normals, smooth_pts, smooth_normals)
    nc_lumpy = metrics.normal_consistency(pts, normals, lumpy_pts, lumpy_normals)
    assert nc_smooth > 0.98
    assert nc_lumpy < nc_smooth - 0.025
    assert metrics.chamfer(pts, lumpy_pts) - metrics.chamfer(pts, smooth_pts) < 0.006


def test_normal_consistency_is_symmetric_and_low_between_a_cube_and_a_sphere():
    ball, cube = samples(sphere(0.8), seed=1), samples(box((0.7, 0.7, 0.7)), seed=2)
    both_ways = metrics.normal_consistency(*ball, *cube)
    assert both_ways == metrics.normal_consistency(*cube, *ball)
    assert both_ways < 0.85

"""Procedural shape families: closed, outward, canonical, deterministic and varied meshes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from model_server.learning.data import shapes
from model_server.geometry.surface_nets import surface_nets
from model_server.geometry.mesh import closed_and_oriented, signed_volume
from model_server.learning.data.shapes import FAMILIES, MAX_FACES, Scene, make_shape

REQUIRED = ("chair", "table", "airplane", "quadruped", "humanoid", "lathe", "mug")


def _pieces(vertices: np.ndarray, faces: np.ndarray) -> int:
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(vertices),) * 2)
    return connected_components(graph, directed=False)[0]


def test_at_least_eight_families_including_the_required_ones():
    assert len(FAMILIES) >= 8
    assert set(REQUIRED) <= set(FAMILIES)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("family", FAMILIES)
def test_shape_is_closed_outward_canonical_and_one_piece(family, seed):
    vertices, faces = make_shape(family, np.random.default_rng(seed))
    assert vertices.dtype == np.float32 and vertices.shape[1] == 3
    assert faces.dtype == np.int32 and faces.shape[1] == 3
    assert faces.min() >= 0 and faces.max() < len(vertices)
    assert closed_and_oriented(faces)
    assert signed_volume(vertices, faces) > 0
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    np.testing.assert_allclose(0.5 * (lo + hi), 0.0, atol=1e-4)
    assert (hi - lo).max() == pytest.approx(1.7, rel=0.01)
    assert len(faces) <= 1.2 * MAX_FACES
    if family != "assembly":          # random assemblies may hold separate parts, as some sketches do
        assert _pieces(vertices, faces) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_gives_the_same_mesh_and_other_seeds_differ(family):
    v1, f1 = make_shape(family, np.random.default_rng(7))
    v2, f2 = make_shape(family, np.random.default_rng(7))
    v3, f3 = make_shape(family, np.random.default_rng(8))
    assert np.array_equal(v1, v2) and np.array_equal(f1, f2)
    assert v1.shape != v3.shape or not np.allclose(v1, v3)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_varies_in_proportions(family):
    """Across ten seeds the bounding-box proportions spread widely: not one template scaled."""
    aspects = []
    for seed in range(10):
        vertices, _ = make_shape(family, np.random.default_rng(100 + seed), grid=48)
        extent = vertices.max(axis=0) - vertices.min(axis=0)
        aspects.append(extent / extent.max())
    spread = np.ptp(np.array(aspects), axis=0).max()
    assert spread > 0.15


def test_unknown_family_is_a_value_error():
    with pytest.raises(ValueError, match="unknown shape family"):
        make_shape("spaceship", np.random.default_rng(0))


def test_coarser_grid_gives_fewer_faces():
    fine = make_shape("chair", np.random.default_rng(3), grid=96)[1]
    coarse = make_shape("chair", np.random.default_rng(3), grid=48)[1]
    assert len(coarse) < 0.6 * len(fine)


def test_sphere_volume_matches():
    scene = Scene()
    scene.add(shapes.sphere((0.1, -0.2, 0.3), 0.5))
    vertices, faces = scene.mesh(64)
    assert closed_and_oriented(faces)
    assert signed_volume(vertices, faces) == pytest.approx(4.0 / 3.0 * math.pi * 0.5 ** 3, rel=0.03)
    np.testing.assert_allclose(vertices.mean(axis=0), (0.1, -0.2, 0.3), atol=0.01)


def test_cut_leaves_an_open_cavity():
    """A cylinder hollowed from the top: the volume of the remaining shell, one closed surface."""
    scene = Scene()
    scene.add(shapes.cylinder((0, 0, 0.5), 0.5, 1.0))
    scene.cut(shapes.cylinder((0, 0, 1.0), 0.4, 1.6))
    vertices, faces = scene.mesh(96)
    assert closed_and_oriented(faces)
    expected = math.pi * 0.5 ** 2 * 1.0 - math.pi * 0.4 ** 2 * 0.8
    assert signed_volume(vertices, faces) == pytest.approx(expected, rel=0.05)
    assert _pieces(vertices, faces) == 1


def test_rotated_primitive_bounds_and_shape():
    """A long box turned 90 degrees about Z lies along Y."""
    scene = Scene()
    scene.add(shapes.box((0, 0, 0), (1.0, 0.2, 0.2), 0.02, shapes.rot_z(math.pi / 2)))
    vertices, _ = scene.mesh(64)
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    assert extent[1] == pytest.approx(1.0, abs=0.03)
    assert extent[0] == pytest.approx(0.2, abs=0.03)


def test_ambiguous_grid_faces_are_joined_into_a_closed_surface():
    """Two samples inside that touch only diagonally across a grid face."""
    values = np.ones((6, 6, 6), np.float32)
    values[2, 2, 2] = values[3, 3, 2] = -1.0
    shapes._resolve_ambiguous_faces(values, 1.0)
    _, faces = surface_nets(values, 0.0, 1.0)
    assert closed_and_oriented(faces)

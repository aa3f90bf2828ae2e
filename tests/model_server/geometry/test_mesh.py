"""Mesh topology: surfaces whose sheets touch are made 2-manifold again."""

from __future__ import annotations

import numpy as np
import pytest

from model_server.geometry.mesh import closed_and_oriented, signed_volume, split_touching_sheets


def _cube(origin) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float) + origin
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [(a, b, c) for a, b, c, d in quads] + [(a, c, d) for a, b, c, d in quads]
    return corners, np.array(faces)


def _merged(*meshes) -> tuple[np.ndarray, np.ndarray]:
    """Meshes joined into one, coincident vertices merged (so touching cubes share them)."""
    vertices = np.concatenate([v for v, _ in meshes])
    faces, offset = [], 0
    for v, f in meshes:
        faces.append(f + offset)
        offset += len(v)
    unique, inverse = np.unique(np.round(vertices, 9), axis=0, return_inverse=True)
    return unique, inverse.ravel()[np.concatenate(faces)]


@pytest.mark.parametrize("second", [(1, 1, 0), (1, 1, 1)], ids=["edge", "vertex"])
def test_sheets_touching_along_an_edge_or_at_a_vertex_are_split(second):
    vertices, faces = _merged(_cube((0, 0, 0)), _cube(second))
    assert signed_volume(vertices, faces) == pytest.approx(2.0)
    split_v, split_f = split_touching_sheets(vertices, faces)
    assert closed_and_oriented(split_f)
    assert len(split_v) == len(vertices) + (2 if second == (1, 1, 0) else 1)
    assert signed_volume(split_v, split_f) == pytest.approx(2.0, abs=1e-3)
    nearest = np.linalg.norm(split_v[:, None] - vertices[None], axis=2).min(axis=1)
    assert nearest.max() <= 1e-3          # copies moved apart by the gap only
    unchanged_v, unchanged_f = split_touching_sheets(*_cube((0, 0, 0)))
    assert np.array_equal(unchanged_f, _cube((0, 0, 0))[1])

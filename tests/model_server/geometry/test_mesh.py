"""Mesh topology: edges, the faces and opposite vertices around them and closedness, on
tables of small hand-made meshes with known answers; surfaces whose sheets touch are made
2-manifold again."""

from __future__ import annotations

import numpy as np
import pytest

from model_server.geometry.mesh import (closed_and_oriented, edge_faces, edge_opposites, signed_volume,
                                       split_touching_sheets, unique_edges)


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


# --- Tables of small meshes ------------------------------------------------------------------

TET_VERTICES = np.array([(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)], float)
TET = [(0, 2, 1), (0, 1, 3), (0, 3, 2), (1, 2, 3)]           # wound outward, volume 1/6
# The tetrahedron turned half a turn about the x axis (vertices 2, 3 -> 4, 5): it touches the
# first one along the edge 0-1 only, which four faces then share.
TWO_TETS_VERTICES = np.concatenate([TET_VERTICES, [(0, -1, 0), (0, 0, -1)]])
TWO_TETS = TET + [(0, 4, 1), (0, 1, 5), (0, 5, 4), (1, 4, 5)]
BOX_VERTICES, BOX = _cube((0, 0, 0))
OPEN_BOX = np.delete(BOX, [5, 11], axis=0)                  # the two triangles of the top (z = 1)


class Case:
    """A small mesh and what is known about it: its edges with their face counts, the opposite
    vertices of each edge (d = -1 on an edge without exactly two faces), and closedness."""

    def __init__(self, vertices: np.ndarray | None, faces, edges: dict[tuple[int, int], int],
                 opposites: list[tuple[int, int, int, int]] | None, closed: bool):
        self.vertices, self.faces = vertices, np.array(faces, np.int64)
        self.edges, self.opposites, self.closed = edges, opposites, closed


CASES = {
    "one triangle": Case(None, [(0, 1, 2)], {(0, 1): 1, (0, 2): 1, (1, 2): 1},
                         [(0, 1, 2, -1), (0, 2, 1, -1), (1, 2, 0, -1)], False),
    "two triangles sharing an edge": Case(
        None, [(0, 1, 2), (2, 1, 3)], {(0, 1): 1, (0, 2): 1, (1, 2): 2, (1, 3): 1, (2, 3): 1},
        [(0, 1, 2, -1), (0, 2, 1, -1), (1, 2, 0, 3), (1, 3, 2, -1), (2, 3, 1, -1)], False),
    "tetrahedron": Case(TET_VERTICES, TET, {(a, b): 2 for a in range(4) for b in range(a + 1, 4)},
                        [(a, b, *sorted({0, 1, 2, 3} - {a, b})) for a in range(4) for b in range(a + 1, 4)], True),
    "open box": Case(BOX_VERTICES, OPEN_BOX,
                     {**{tuple(sorted(e)): 2 for e in np.sort(OPEN_BOX[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), 1)},
                      (1, 3): 1, (1, 5): 1, (3, 7): 1, (5, 7): 1}, None, False),
    "two tetrahedra touching at an edge": Case(
        TWO_TETS_VERTICES, TWO_TETS,
        {(0, 1): 4, (0, 2): 2, (0, 3): 2, (1, 2): 2, (1, 3): 2, (2, 3): 2,
         (0, 4): 2, (0, 5): 2, (1, 4): 2, (1, 5): 2, (4, 5): 2},
        [(0, 2, 1, 3), (0, 3, 1, 2), (1, 2, 0, 3), (1, 3, 0, 2), (2, 3, 0, 1),
         (0, 4, 1, 5), (0, 5, 1, 4), (1, 4, 0, 5), (1, 5, 0, 4), (4, 5, 0, 1),
         (0, 1, 2, -1), (0, 1, 3, -1), (0, 1, 4, -1), (0, 1, 5, -1)], False),
    "non-manifold fin": Case(
        None, [(0, 1, 2), (1, 0, 3), (0, 1, 4)],
        {(0, 1): 3, (0, 2): 1, (1, 2): 1, (0, 3): 1, (1, 3): 1, (0, 4): 1, (1, 4): 1},
        [(0, 1, 2, -1), (0, 1, 3, -1), (0, 1, 4, -1), (1, 2, 0, -1), (0, 2, 1, -1),
         (0, 3, 1, -1), (1, 3, 0, -1), (0, 4, 1, -1), (1, 4, 0, -1)], False),
    "closed, one face turned over": Case(TET_VERTICES, [(0, 1, 2)] + TET[1:],
                                         {(a, b): 2 for a in range(4) for b in range(a + 1, 4)}, None, False),
}
cases = pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))


def _normalised(rows: np.ndarray) -> list[tuple[int, ...]]:
    """Opposite rows with c <= d on a two-face edge (the order of the two faces is free), sorted."""
    out = [(a, b, *sorted((c, d))) if d >= 0 else (a, b, c, d) for a, b, c, d in np.asarray(rows).tolist()]
    return sorted(out)


@cases
def test_unique_edges(case):
    edges, inverse, counts = unique_edges(case.faces)
    assert [tuple(e) for e in edges.tolist()] == sorted(case.edges)              # (low, high), in order
    assert dict(zip(map(tuple, edges.tolist()), counts.tolist())) == case.edges
    directed = case.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    np.testing.assert_array_equal(edges[inverse], np.sort(directed, axis=1))      # each half-edge's edge


@cases
def test_edge_faces(case):
    edges, faces = edge_faces(case.faces)
    assert [tuple(e) for e in edges.tolist()] == sorted(case.edges)
    for (a, b), (f, g) in zip(edges.tolist(), faces.tolist()):
        assert {a, b} <= set(case.faces[f].tolist()) and {a, b} <= set(case.faces[g].tolist())
        assert (f != g) == (case.edges[a, b] == 2), (a, b, f, g)                 # else the first face twice
        if case.edges[a, b] == 2:
            on_edge = [i for i, face in enumerate(case.faces.tolist()) if {a, b} <= set(face)]
            assert sorted((f, g)) == on_edge
        else:
            assert f == min(i for i, face in enumerate(case.faces.tolist()) if {a, b} <= set(face))


@cases
def test_edge_opposites(case):
    rows = edge_opposites(case.faces)
    assert rows.shape[1] == 4 and rows.dtype == np.int64
    assert len(rows) == sum(count if count != 2 else 1 for count in case.edges.values())
    if case.opposites is not None:
        assert _normalised(rows) == sorted(case.opposites)
    for a, b, c, d in rows.tolist():                      # every opposite vertex closes a face with its edge
        for opposite in (c, d) if d >= 0 else (c,):
            assert sorted((a, b, opposite)) in [sorted(face) for face in case.faces.tolist()]


@cases
def test_closed_and_oriented(case):
    assert closed_and_oriented(case.faces) == case.closed


def test_an_empty_mesh_is_not_closed():
    assert not closed_and_oriented(np.zeros((0, 3), np.int64))


@pytest.mark.parametrize("name", ["one triangle", "two triangles sharing an edge", "tetrahedron", "open box"])
def test_a_mesh_without_touching_sheets_comes_back_unchanged(name):
    case = CASES[name]
    vertices = case.vertices
    if vertices is None:
        vertices = np.random.default_rng(0).normal(size=(case.faces.max() + 1, 3))
    new_vertices, new_faces = split_touching_sheets(vertices, case.faces)
    assert new_vertices is vertices and new_faces is case.faces


def test_two_tetrahedra_touching_at_an_edge_are_split_into_two_closed_sheets():
    case = CASES["two tetrahedra touching at an edge"]
    vertices, faces = split_touching_sheets(case.vertices, case.faces)
    assert len(vertices) == len(case.vertices) + 2          # the shared edge's two ends, copied once each
    assert closed_and_oriented(faces)
    assert signed_volume(vertices, faces) == pytest.approx(2 / 6, abs=1e-3)
    edges, _, counts = unique_edges(faces)
    assert (counts == 2).all() and len(edges) == 12

"""Mesh topology and the facts derived from it, defined once: edges and the faces around
them, adjacency and the uniform Laplacian, face and vertex normals, enclosed volume and
closedness.

A mesh is a pair of arrays: vertices (V, 3) floats and faces (F, 3) vertex indices.
Half-edge ``3 i + k`` of face ``i`` runs from its corner ``k`` to corner ``k + 1``.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components


def half_edges(faces: np.ndarray) -> np.ndarray:
    """(3F, 2) directed edges, face by face: (f0, f1), (f1, f2), (f2, f0)."""
    return np.asarray(faces, np.int64)[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)


def unique_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edges (E, 2) as (low, high) in lexicographic order, the edge of every
    half-edge (3F,), and how many faces share each edge (E,)."""
    half = np.sort(half_edges(faces), axis=1)
    base = int(half.max()) + 1 if len(half) else 1
    keys, first, inverse, counts = np.unique(half[:, 0] * base + half[:, 1], return_index=True,
                                             return_inverse=True, return_counts=True)
    return half[first], inverse.ravel(), counts


def edge_faces(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges (E, 2) and the two faces on each (E, 2). An edge without exactly
    two faces (boundary, non-manifold) lists its first face twice."""
    edges, inverse, counts = unique_edges(faces)
    owner = np.repeat(np.arange(len(faces)), 3)
    order = np.argsort(inverse, kind="stable")
    first = np.searchsorted(inverse[order], np.arange(len(edges)))
    face_a = owner[order[first]]
    face_b = np.where(counts == 2, owner[order[np.minimum(first + 1, len(order) - 1)]], face_a)
    return edges, np.stack([face_a, face_b], 1).astype(np.int64)


def edge_opposites(faces: np.ndarray) -> np.ndarray:
    """(E', 4) rows (a, b, c, d): edge a-b with the vertices c and d opposite it in its two
    faces. An edge with one face, or more than two, gets one row per face with d = -1."""
    f = np.asarray(faces, np.int64)
    edges, inverse, counts = unique_edges(f)
    opposite = f[:, [2, 0, 1]].reshape(-1)
    order = np.argsort(inverse, kind="stable")
    start = np.cumsum(counts) - counts
    pair = start[counts == 2]
    paired = np.column_stack([edges[counts == 2], opposite[order[pair]], opposite[order[pair + 1]]])
    single = order[np.repeat(counts != 2, counts)]
    lone = np.column_stack([edges[inverse[single]], opposite[single], np.full(len(single), -1)])
    return np.concatenate([paired, lone]).astype(np.int64)


def adjacency(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both directions (i, j) of every undirected edge: vertex j is a neighbour of vertex i."""
    edges, _, _ = unique_edges(faces)
    return np.concatenate([edges[:, 0], edges[:, 1]]), np.concatenate([edges[:, 1], edges[:, 0]])


def neighbour_mean(vertices: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(V, 3): each vertex's mean neighbour position (its own position where it has none),
    for the ``adjacency`` pairs of its mesh."""
    v = np.asarray(vertices, np.float64)
    i, j = pairs
    degree = np.bincount(i, minlength=len(v))
    total = np.stack([np.bincount(i, v[j, k], minlength=len(v)) for k in range(3)], axis=1)
    return np.where(degree[:, None] > 0, total / np.maximum(degree, 1)[:, None], v)


def laplacian(count: int, edges: np.ndarray) -> sparse.csr_matrix:
    """The uniform graph Laplacian L = D - A (count x count) of undirected ``edges`` (E, 2)."""
    edges = np.asarray(edges, np.int64)
    i = np.concatenate([edges[:, 0], edges[:, 1], np.arange(count)])
    j = np.concatenate([edges[:, 1], edges[:, 0], np.arange(count)])
    degree = np.bincount(edges.reshape(-1), minlength=count).astype(np.float64)
    values = np.concatenate([np.full(2 * len(edges), -1.0), degree])
    return sparse.csr_matrix((values, (i, j)), shape=(count, count))


def face_normals(vertices: np.ndarray, faces: np.ndarray, unit: bool = True) -> np.ndarray:
    """(F, 3) float64 face normals following the winding: unit, or (``unit=False``) with
    length twice the face's area."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    if not unit:
        return n
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) float32; they follow the faces' winding."""
    f = np.asarray(faces, np.int64)
    weighted = face_normals(vertices, f, unit=False)
    normals = np.stack([np.bincount(f.reshape(-1), np.repeat(weighted[:, k], 3), minlength=len(vertices))
                        for k in range(3)], axis=1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.where(length > 0, length, 1.0)).astype(np.float32)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed mesh; positive when its faces wind outward."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    return float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6.0)


def closed_and_oriented(faces: np.ndarray) -> bool:
    """True when every edge is shared by exactly two faces that traverse it in opposite
    directions: a closed, consistently oriented surface (a cheap topological check)."""
    directed = half_edges(faces)
    if len(directed) == 0:
        return False
    base = int(directed.max()) + 1
    forward = directed[:, 0] * base + directed[:, 1]
    if len(np.unique(forward)) != len(forward):
        return False
    backward = directed[:, 1] * base + directed[:, 0]
    return bool(np.isin(backward, forward).all())


def edge_defects(faces: np.ndarray) -> tuple[int, int]:
    """How far a mesh is from closed and manifold (every edge on exactly two faces): its
    open edges (on one face) and its edges on more than two faces."""
    _, _, counts = unique_edges(np.asarray(faces, np.int64).reshape(-1, 3))
    return int((counts == 1).sum()), int((counts > 2).sum())


def split_touching_sheets(vertices: np.ndarray, faces: np.ndarray,
                          gap: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Where two sheets of a surface touch, along an edge four faces share or at a vertex
    two fans share, give each sheet its own copy of the shared vertices, moved ``gap``
    inward along its own faces' normal, so the surface is a closed 2-manifold again.

    Marching cubes leaves such contacts where two parts of a surface come within a cell of
    each other (thin walls, noisy predicted points). Across an edge with two faces each
    way, a face is joined to the opposite-running face whose normal is closest to its own:
    the two faces of one sheet. Returns new vertices and faces; a mesh without contacts
    comes back unchanged."""
    f = np.asarray(faces, np.int64)
    v = np.asarray(vertices, np.float64)
    half = half_edges(f)
    base = len(v)
    forward = half[:, 0] * base + half[:, 1]
    backward = half[:, 1] * base + half[:, 0]
    order = np.argsort(forward, kind="stable")
    sorted_keys = forward[order]
    first = np.searchsorted(sorted_keys, backward)
    count = np.searchsorted(sorted_keys, backward, side="right") - first
    normals = face_normals(v, f)
    twin = np.full(len(half), -1, np.int64)
    single = np.flatnonzero(count == 1)
    twin[single] = order[first[single]]
    for h in np.flatnonzero(count > 1):           # a handful: the contacts, matched greedily
        if twin[h] >= 0:
            continue
        ours = np.flatnonzero(forward == forward[h])
        theirs = order[first[h]:first[h] + count[h]]
        score = normals[ours // 3] @ normals[theirs // 3].T
        for flat in np.argsort(-score, axis=None):
            i, j = divmod(int(flat), len(theirs))
            if twin[ours[i]] < 0 and twin[theirs[j]] < 0:
                twin[ours[i]], twin[theirs[j]] = theirs[j], ours[i]
    # Wedges (face corners) meeting across a twin pair are the same vertex of one sheet.
    h = np.flatnonzero(twin >= 0)
    t = twin[h]
    a_here, b_here = h, 3 * (h // 3) + (h % 3 + 1) % 3          # corners of h's start and end
    a_there, b_there = 3 * (t // 3) + (t % 3 + 1) % 3, t        # t runs b -> a
    graph = sparse.coo_matrix((np.ones(2 * len(h)), (np.concatenate([a_here, b_here]),
                                                     np.concatenate([a_there, b_there]))), shape=(3 * len(f),) * 2)
    count_vertices, wedge_vertex = connected_components(graph, directed=False)
    if count_vertices == len(np.unique(f)):
        return vertices, faces
    original = np.zeros(wedge_vertex.max() + 1, np.int64)
    original[wedge_vertex] = f.ravel()
    copies = np.bincount(original, minlength=len(v))
    new_vertices = v[original].copy()
    shared = copies[original] > 1
    if shared.any():
        fan_normal = np.zeros((len(original), 3))
        np.add.at(fan_normal, wedge_vertex, np.repeat(normals, 3, axis=0))
        length = np.linalg.norm(fan_normal, axis=1, keepdims=True)
        new_vertices[shared] -= gap * (fan_normal / np.maximum(length, 1e-12))[shared]
    return new_vertices, wedge_vertex.reshape(-1, 3)

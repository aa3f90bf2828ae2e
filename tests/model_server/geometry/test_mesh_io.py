import json
import struct

import numpy as np
import open3d as o3d
import pytest

from model_server.geometry.mesh import vertex_normals
from model_server.geometry.mesh_io import write_mesh


@pytest.fixture(scope="module")
def tetra():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)
    return vertices, faces


def test_vertex_normals_point_outward(tetra):
    vertices, faces = tetra
    normals = vertex_normals(vertices, faces)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    assert np.all(np.einsum("ij,ij->i", normals, vertices - vertices.mean(axis=0)) > 0)


@pytest.mark.parametrize("suffix", [".ply", ".obj"])
def test_ply_and_obj_read_back(tmp_path, tetra, suffix):
    vertices, faces = tetra
    path = write_mesh(tmp_path / f"m{suffix}", vertices, faces)
    mesh = o3d.io.read_triangle_mesh(str(path))
    # readers may renumber vertices; the triangles' corner positions must be identical
    np.testing.assert_allclose(np.asarray(mesh.vertices)[np.asarray(mesh.triangles)], vertices[faces], atol=1e-6)
    assert mesh.has_vertex_normals()


def test_glb_is_valid_gltf_binary(tmp_path, tetra):
    vertices, faces = tetra
    data = write_mesh(tmp_path / "m.glb", vertices, faces).read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_len % 4 == 0
    gltf = json.loads(data[20:20 + json_len])
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert bin_type == b"BIN\0" and bin_len % 4 == 0
    blob = data[28 + json_len:28 + json_len + bin_len]
    assert gltf["asset"]["version"] == "2.0" and gltf["buffers"][0]["byteLength"] <= bin_len

    def accessor(index, dtype, width):
        acc = gltf["accessors"][index]
        view = gltf["bufferViews"][acc["bufferView"]]
        assert view["byteOffset"] % 4 == 0
        return np.frombuffer(blob, dtype, acc["count"] * width, view["byteOffset"]).reshape(-1, width)

    primitive = gltf["meshes"][0]["primitives"][0]
    positions = accessor(primitive["attributes"]["POSITION"], "<f4", 3)
    normals = accessor(primitive["attributes"]["NORMAL"], "<f4", 3)
    indices = accessor(primitive["indices"], "<u4", 1).reshape(-1, 3)
    np.testing.assert_allclose(positions, vertices)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(indices, faces)
    pos_acc = gltf["accessors"][primitive["attributes"]["POSITION"]]
    assert pos_acc["min"] == [0.0, 0.0, 0.0] and pos_acc["max"] == [1.0, 1.0, 1.0]
    assert gltf["accessors"][primitive["indices"]]["componentType"] == 5125


def test_glb_loads_in_open3d(tmp_path, tetra):
    mesh = o3d.io.read_triangle_mesh(str(write_mesh(tmp_path / "m.glb", *tetra)))
    assert len(mesh.vertices) == 4 and len(mesh.triangles) == 4


def test_unknown_suffix_and_bad_indices_are_refused(tmp_path, tetra):
    with pytest.raises(ValueError):
        write_mesh(tmp_path / "m.stl", *tetra)
    with pytest.raises(ValueError):
        write_mesh(tmp_path / "m.ply", tetra[0], tetra[1] + 10)

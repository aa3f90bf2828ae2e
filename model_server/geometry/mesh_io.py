"""Writing meshes (.ply, .obj, .glb) with the per-vertex normals they carry.

Small writers of our own: binary little-endian PLY, Wavefront OBJ with normals, and
glTF 2.0 binary (GLB) with positions, normals and 32-bit indices.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from model_server.geometry.mesh import vertex_normals

MESH_SUFFIXES = (".ply", ".obj", ".glb")


def write_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """Write a triangle mesh; the format follows the suffix (.ply, .obj or .glb)."""
    path = Path(path)
    writers = {".ply": write_ply, ".obj": write_obj, ".glb": write_glb}
    suffix = path.suffix.lower()
    if suffix not in writers:
        raise ValueError(f"unsupported mesh format {suffix!r}; use one of {', '.join(MESH_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    v = np.ascontiguousarray(vertices, np.float32).reshape(-1, 3)
    f = np.ascontiguousarray(faces, np.int64).reshape(-1, 3)
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError("face indices out of range")
    writers[suffix](path, v, f)
    return path


def write_ply(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Binary little-endian PLY with float vertex positions and normals, int face lists."""
    normals = vertex_normals(vertices, faces)
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment Sketch2Mesh\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    vertex_block = np.concatenate([vertices, normals], axis=1).astype("<f4")
    face_block = np.zeros(len(faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face_block["n"] = 3
    face_block["i"] = faces
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(vertex_block.tobytes())
        fh.write(face_block.tobytes())


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Wavefront OBJ with vertex normals (1-based indices)."""
    normals = vertex_normals(vertices, faces)
    with open(path, "w", encoding="ascii") as fh:
        fh.write("# Sketch2Mesh\n")
        np.savetxt(fh, vertices, fmt="v %.6f %.6f %.6f")
        np.savetxt(fh, normals, fmt="vn %.6f %.6f %.6f")
        if len(faces):
            idx = faces + 1
            np.savetxt(fh, np.repeat(idx, 2, axis=1), fmt="f %d//%d %d//%d %d//%d")


def write_glb(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """glTF 2.0 binary: one mesh, one triangle primitive with POSITION, NORMAL and uint32 indices."""
    normals = vertex_normals(vertices, faces)
    blobs = [vertices.astype("<f4").tobytes(), normals.astype("<f4").tobytes(), faces.astype("<u4").tobytes()]
    views, offset = [], 0
    for blob, target in zip(blobs, (34962, 34962, 34963)):
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(blob), "target": target})
        offset += _padded(len(blob))
    lo = vertices.min(axis=0) if len(vertices) else np.zeros(3)
    hi = vertices.max(axis=0) if len(vertices) else np.zeros(3)
    gltf = {
        "asset": {"version": "2.0", "generator": "Sketch2Mesh"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "Sketch2Mesh"}],
        "meshes": [{"name": "Sketch2Mesh", "primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1}, "indices": 2, "mode": 4}]}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(vertices), "type": "VEC3",
             "min": [float(x) for x in lo], "max": [float(x) for x in hi]},
            {"bufferView": 1, "componentType": 5126, "count": len(vertices), "type": "VEC3"},
            {"bufferView": 2, "componentType": 5125, "count": int(faces.size), "type": "SCALAR"},
        ],
        "bufferViews": views,
        "buffers": [{"byteLength": offset}],
    }
    json_chunk = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    json_chunk += b" " * (_padded(len(json_chunk)) - len(json_chunk))
    bin_chunk = b"".join(blob + b"\0" * (_padded(len(blob)) - len(blob)) for blob in blobs)
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<4sII", b"glTF", 2, total))
        fh.write(struct.pack("<I4s", len(json_chunk), b"JSON") + json_chunk)
        fh.write(struct.pack("<I4s", len(bin_chunk), b"BIN\0") + bin_chunk)


def _padded(n: int) -> int:
    return (n + 3) // 4 * 4

"""A toy dataset in the dataset format, written directly (no rendering), for the readers' tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_server.geometry.maps import Maps
from model_server.learning.data import format as fmt

TOY_RES = 32
TOY_STYLES = ("clean", "sketchy", "suggestive")
TOY_SHAPES = (("blob", fmt.PROCEDURAL_SOURCE), ("lathe", fmt.PROCEDURAL_SOURCE),
              (fmt.MESH_FAMILY, "/meshes/a_very_long_mesh_file_name.ply"))


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three shapes of random maps and sketches at 32², the last one from a mesh file and
    without the learned backend's inputs (as a shape whose sketches share no volume)."""
    folder = tmp_path_factory.mktemp("toy_data")
    (folder / fmt.SHAPES_FOLDER).mkdir()
    rng = np.random.default_rng(0)
    entries = [fmt.index_entry(fmt.shape_id(i), family, source) for i, (family, source) in enumerate(TOY_SHAPES)]
    for entry in entries:
        normal = rng.normal(size=(14, TOY_RES, TOY_RES, 3))
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        maps = Maps(rng.uniform(-1, 1, (14, TOY_RES, TOY_RES)), normal,
                    (rng.random((14, TOY_RES, TOY_RES)) > 0.5).astype(np.float32))
        inks = rng.random((len(TOY_STYLES), 3, TOY_RES, TOY_RES))
        arrays = fmt.encode(maps, inks, np.zeros((3, 3)), np.zeros((1, 3)))
        if entry["family"] != fmt.MESH_FAMILY:      # the learned backend's inputs: two readings on small grids
            arrays.update(field_input=rng.random((2, 13, 8, 8, 8)).astype(np.float16),
                          field_grids=rng.normal(size=(2, 3, 16, 16, 16)).astype(np.float16),
                          field_style=np.array([0, 1], np.int8), occupancy=np.packbits(rng.random(16 ** 3) > 0.5))
        fmt.write_npz(folder / entry["file"], arrays)
    fmt.write_index(folder, entries)
    fmt.write_meta(folder, fmt.make_meta(TOY_RES, TOY_STYLES, ("front", "side", "top"), 0, len(entries)))
    return folder

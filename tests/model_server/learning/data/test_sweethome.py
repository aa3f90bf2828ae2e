"""Reading Debian's sweethome3d-furniture archives, on a small .sh3f-like zip built here."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from model_server.geometry.normalize import TARGET_EXTENT
from model_server.geometry.raycast import occupancy
from model_server.learning.data import sweethome

CATALOG = """# PluginFurnitureCatalog.properties
! another comment
id=Test#catalog
license=Public domain
name#1=Chair \\u00e9
category#1=Living room
creator#1=Someone
model#1=/test/box/box.obj
name#2=Lying \\
    box
category#2=Bedroom
creator#2 Other
license#2=Creative Commons Attribution 3.0 license
model#2=/test/lying/lying.obj
modelRotation#2=1 0 0 0 0 1 0 -1 0
"""


def box_obj(size: tuple[float, float, float], open_top: bool = True) -> str:
    """An axis-aligned box as an OBJ with quads and v/vt/vn corners; the +Y face left out
    (an open top, as many real models have) when ``open_top``."""
    sx, sy, sz = size
    corners = [(x * sx, y * sy, z * sz) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    quads = [(1, 2, 4, 3), (5, 7, 8, 6), (1, 5, 6, 2), (3, 4, 8, 7), (1, 3, 7, 5), (2, 6, 8, 4)]
    if open_top:
        quads.remove((3, 4, 8, 7))          # y = sy
    lines = ["mtllib box.mtl", "o Box"] + [f"v {x} {y} {z}" for x, y, z in corners] + ["vt 0 0", "vn 0 1 0"]
    lines += ["f " + " ".join(f"{i}/1/1" for i in quad) for quad in quads]
    return "\n".join(lines) + "\n"


@pytest.fixture
def archive(tmp_path) -> Path:
    path = tmp_path / "Test.sh3f"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("PluginFurnitureCatalog.properties", CATALOG.encode("latin-1"))
        zf.writestr("test/box/box.obj", box_obj((1.0, 2.0, 1.0)))          # standing: tall along OBJ's +Y (up)
        zf.writestr("test/box/box.mtl", "newmtl none\n")
        zf.writestr("test/lying/lying.obj", box_obj((1.0, 1.0, 2.0)))      # lying along Z until rotated
    return path


def test_properties_read_as_java_writes_them():
    props = sweethome.read_properties("a=1\n# c\n! c\nb: two \\\n   words\nc three\nd=\\u00e9\\:x\\\\\n")
    assert props == {"a": "1", "b": "two words", "c": "three", "d": "é:x\\"}


def test_catalog_lists_models_with_their_credits_and_rotation(archive):
    first, second = sweethome.catalog(archive)
    assert (first.index, first.name, first.category, first.creator) == (1, "Chair é", "Living room", "Someone")
    assert first.license == "Public domain" and first.rotation is None and first.path == "test/box/box.obj"
    assert (second.name, second.creator) == ("Lying box", "Other")
    assert second.license == "Creative Commons Attribution 3.0 license"     # license#i overrides the archive's
    assert second.rotation == (1, 0, 0, 0, 0, 1, 0, -1, 0) and second.key == "Test#2"


def test_load_fans_polygons_and_stands_the_model_up(archive):
    standing, lying = sweethome.catalog(archive)
    vertices, faces = sweethome.load(standing)
    assert faces.shape == (10, 3) and vertices.dtype == np.float32   # five quads, two triangles each
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    assert np.argmax(extent) == 2 and extent[2] == pytest.approx(TARGET_EXTENT)   # OBJ's Y up became Z up
    rotated, _ = sweethome.load(lying)
    assert np.argmax(rotated.max(axis=0) - rotated.min(axis=0)) == 2               # modelRotation applied
    unrotated, _ = sweethome.load(dataclasses.replace(lying, rotation=None))
    assert np.argmax(unrotated.max(axis=0) - unrotated.min(axis=0)) == 1


def test_occupancy_tells_inside_from_outside_of_an_open_model(archive):
    vertices, faces = sweethome.load(sweethome.catalog(archive)[0])   # a box without its top
    top = vertices[:, 2].max()
    inside = np.array([[0.0, 0.0, 0.0], [0.1, -0.1, -0.4], [0.0, 0.1, 0.3 * top]])
    outside = np.array([[0.0, 0.0, top + 0.2], [0.8, 0.0, 0.0], [0.0, -0.7, -0.2]])
    assert occupancy(vertices, faces, inside, rays=15).all()
    assert not occupancy(vertices, faces, outside, rays=15).any()


def test_attribution_credits_every_model(archive):
    text = sweethome.attribution(sweethome.catalog(archive))
    assert "| Chair é | Living room | Someone | Public domain | Test.sh3f |" in text
    assert "| Lying box | Bedroom | Other | Creative Commons Attribution 3.0 license | Test.sh3f |" in text


def test_fetch_uses_what_the_cache_already_holds(archive, tmp_path):
    cache = tmp_path / "cache"
    (cache / sweethome.FURNITURE).mkdir(parents=True)
    (cache / sweethome.FURNITURE / archive.name).write_bytes(archive.read_bytes())
    assert sweethome.fetch(cache) == [cache / sweethome.FURNITURE / archive.name]


def test_a_face_past_the_last_vertex_is_refused():
    with pytest.raises(sweethome.MeshError, match="refers to a vertex"):
        sweethome.read_obj("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n")


def test_the_dataset_command_makes_one_shape_per_model_in_its_category_and_credits_them(archive, tmp_path):
    """The recipe's data step on the test archive: families are the catalog's categories,
    the open box's truth is solid inside (not just its walls), and the attribution lists
    exactly the models training may see."""
    from model_server.__main__ import main as cli
    from model_server.learning.data.format import read_index
    from model_server.reconstruct.backends.learned_field import FINE, grid_axis

    cache = tmp_path / "cache"
    (cache / sweethome.FURNITURE).mkdir(parents=True)
    (cache / sweethome.FURNITURE / archive.name).write_bytes(archive.read_bytes())
    out = tmp_path / "real"
    assert cli(["dataset", "--out", str(out), "--sweethome", str(cache), "--resolution", "64", "--workers", "1"]) == 0
    index = read_index(out)
    assert [(e["family"], e["source"]) for e in index] == [("living-room", "sweethome3d-furniture:Test#1"),
                                                           ("bedroom", "sweethome3d-furniture:Test#2")]
    with np.load(out / index[0]["file"]) as data:
        vertices = data["vertices"]
        inside = np.unpackbits(data["occupancy"], count=FINE ** 3).reshape(FINE, FINE, FINE).astype(bool)
        assert data["field_input"].shape[1:] == (13, 32, 32, 32) and data["field_grids"].shape[1:] == (3, FINE, FINE, FINE)
    axis = grid_axis(FINE)
    spacing = axis[1] - axis[0]
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    box = np.ones((FINE,) * 3, bool)
    for k in range(3):
        shape = [1, 1, 1]
        shape[k] = FINE
        box &= ((axis >= lo[k] - spacing) & (axis <= hi[k] + spacing)).reshape(shape)
    # an open box is a container: its walls and floor are solid, its inside stays empty, and
    # nothing outside it is (ray votes alone streak outwards from open models)
    walls = box & ~ndimage.binary_erosion(box, iterations=3)
    assert (inside & walls).sum() > 0.25 * walls.sum()
    assert (inside & ~walls).sum() < 0.02 * box.sum() and (inside & ~box).sum() == 0
    credits = tmp_path / "ATTRIBUTION.md"
    assert cli(["attribution", "--data", str(out), "--sweethome", str(cache), "--hold-out", "bedroom",
                "--out", str(credits)]) == 0
    text = credits.read_text()
    assert "| Chair é | Living room | Someone | Public domain | Test.sh3f |" in text and "Lying box" not in text

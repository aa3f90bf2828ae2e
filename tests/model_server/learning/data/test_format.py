"""The dataset format: ids and splits, the index and meta files, and the per-shape arrays' round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_server.geometry.maps import Maps
from model_server.learning.data import format as fmt

RES = 64


def test_splits_come_from_the_id():
    ids = [fmt.shape_id(i) for i in range(4000)]
    splits = [fmt.split_of(i) for i in ids]
    assert splits == [fmt.split_of(i) for i in ids]
    share = {s: splits.count(s) / len(ids) for s in fmt.SPLITS}
    assert share["train"] == pytest.approx(0.90, abs=0.02)
    assert share["val"] == pytest.approx(0.05, abs=0.015) and share["test"] == pytest.approx(0.05, abs=0.015)


def test_meta_and_index_lines_are_laid_out_as_documented(tmp_path):
    fmt.write_meta(tmp_path, fmt.make_meta(RES, ["clean"], ["front", "side"], 5, 1))
    assert (tmp_path / "meta.json").read_text() == (
        '{\n "format": 1,\n "resolution": 64,\n "views": 14,\n "styles": [\n  "clean"\n ],\n'
        ' "sketch_views": [\n  "front",\n  "side"\n ],\n "seed": 5,\n "count": 1\n}\n')
    entry = fmt.index_entry("000007", "mesh", "/meshes/a.ply")
    assert entry == {"id": "000007", "family": "mesh", "source": "/meshes/a.ply", "split": fmt.split_of("000007"),
                     "file": "shapes/000007.npz"}
    fmt.write_index(tmp_path, [entry])
    assert (tmp_path / "index.jsonl").read_text() == json.dumps(entry) + "\n" == fmt.index_line(entry)
    assert fmt.read_index(tmp_path) == [entry]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.jsonl", "meta.json"]


def test_read_index_filters_by_split(tmp_path):
    entries = [fmt.index_entry(fmt.shape_id(i), "mesh", "x") for i in range(60)]
    fmt.write_meta(tmp_path, fmt.make_meta(RES, ["clean", "sketchy", "suggestive"], ["front", "side", "top"], 5, 60))
    (tmp_path / "index.jsonl").write_text("".join(json.dumps(e) + "\n" for e in reversed(entries)))
    assert fmt.read_index(tmp_path) == entries
    for split in fmt.SPLITS:
        assert fmt.read_index(tmp_path, split) == [e for e in entries if e["split"] == split]
    with pytest.raises(ValueError, match="split must be one of"):
        fmt.read_index(tmp_path, "holdout")
    with pytest.raises(ValueError, match="not a dataset"):
        fmt.read_index(tmp_path / "nothing")


def test_other_formats_and_broken_indexes_are_refused(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"format": 2}))
    with pytest.raises(ValueError, match="format 2"):
        fmt.read_meta(tmp_path)
    fmt.write_meta(tmp_path, fmt.make_meta(RES, ["clean"], ["front", "side"], 0, 2))
    (tmp_path / "index.jsonl").write_text('{"id": "0000\n' + fmt.index_line(fmt.index_entry("000001", "mesh", "x")))
    with pytest.raises(ValueError, match="line 1 is not valid JSON"):
        fmt.read_index(tmp_path)


def test_load_shape_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    mask = rng.random((14, RES, RES)) > 0.5
    normal = rng.normal(size=(14, RES, RES, 3))
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    normal[..., 2] = np.abs(normal[..., 2])
    depth = rng.uniform(-1.5, 1.5, (14, RES, RES))
    inks = rng.random((3, 3, RES, RES)).astype(np.float32)
    vertices, faces = rng.normal(size=(10, 3)).astype(np.float32), rng.integers(0, 10, (7, 3))
    arrays = fmt.encode(Maps(depth, normal, mask.astype(np.float32)), inks, vertices, faces)
    (tmp_path / "shapes").mkdir()
    fmt.write_npz(tmp_path / "shapes/x.npz", arrays)
    assert [p.name for p in (tmp_path / "shapes").iterdir()] == ["x.npz"]
    shape = fmt.load_shape(tmp_path, {"file": "shapes/x.npz"})
    np.testing.assert_array_equal(shape["mask"], mask)
    np.testing.assert_allclose(shape["depth"][mask], depth[mask], atol=2e-3)
    assert not shape["depth"][~mask].any() and not shape["normal"][~mask].any()
    np.testing.assert_allclose(shape["normal"][mask], normal[mask], atol=0.02)
    np.testing.assert_allclose(np.linalg.norm(shape["normal"][mask], axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(shape["sketch"], inks, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(shape["vertices"], vertices)
    np.testing.assert_array_equal(shape["faces"], faces)
    assert {k: v.dtype for k, v in shape.items()} == {"depth": np.float32, "normal": np.float32, "mask": bool,
                                                      "sketch": np.float32, "vertices": np.float32, "faces": np.int32}


def test_a_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="Object arrays cannot be saved"):
        fmt.write_npz(tmp_path / "x.npz", {"depth": np.zeros(3), "bad": np.array([None, 1], dtype=object)})
    assert list(tmp_path.iterdir()) == []

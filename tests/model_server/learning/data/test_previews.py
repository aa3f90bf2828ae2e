"""Depth, normal and ink pictures, and the ``dataset-preview`` contact sheet (on the toy dataset of conftest)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from model_server.learning.data import previews


def run_preview(*argv: object) -> None:
    parser = argparse.ArgumentParser()
    previews.add_preview_arguments(parser)
    previews.run_preview(parser.parse_args([str(a) for a in argv]))


def test_contact_sheet_has_a_row_per_shape_and_a_column_per_picture(toy_data, tmp_path, capsys):
    from PIL import Image

    sheet = tmp_path / "out" / "sheet.png"
    run_preview(toy_data, "--out", sheet, "--count", 2)
    assert "Wrote" in capsys.readouterr().out
    with Image.open(sheet) as image:
        width, height = image.size
    assert width == previews.LABEL_WIDTH + 15 * previews.PREVIEW_TILE   # 3 styles x 2 views + 3 views x 3 maps
    assert height == previews.HEADER_HEIGHT + 2 * previews.PREVIEW_TILE
    image = previews.contact_sheet(toy_data, count=10)
    assert image.size[1] == previews.HEADER_HEIGHT + 3 * previews.PREVIEW_TILE   # the mesh shape's row too


def test_bad_settings_are_user_errors(toy_data, tmp_path):
    with pytest.raises(ValueError, match="not a dataset"):
        run_preview(tmp_path / "none", "--out", tmp_path / "s.png")
    with pytest.raises(ValueError, match="--count"):
        run_preview(toy_data, "--out", tmp_path / "s.png", "--count", 0)
    with pytest.raises(ValueError, match=".png"):
        run_preview(toy_data, "--out", tmp_path / "s.jpg")
    assert not list(tmp_path.iterdir())


def test_depth_spans_its_own_range_or_a_shared_one():
    depth = np.array([[0.5, -0.5], [0.0, 9.0]], np.float32)
    mask = np.array([[True, True], [True, False]])
    own = previews.depth_image(depth, mask)
    assert own.shape == (2, 2, 3) and np.ptp(own, axis=-1).max() == 0       # grey
    np.testing.assert_allclose(own[..., 0], [[0.2, 1.0], [0.6, 0.0]], atol=1e-6)   # near = light, background black
    shared = previews.depth_image(depth, mask, span=(-1.0, 1.0), colormap="viridis", background=1.0)
    other = previews.depth_image(depth[::-1], mask[::-1], span=(-1.0, 1.0), colormap="viridis", background=1.0)
    np.testing.assert_array_equal(shared[1, 0], other[0, 0])                  # the same depth, the same colour
    assert np.array_equal(shared[1, 1], [1.0, 1.0, 1.0]) and np.ptp(shared[0, 0]) > 0
    assert not previews.depth_image(depth, np.zeros_like(mask)).any()


def test_normals_and_ink():
    normal = np.array([[[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]]], np.float32)
    mask = np.array([[True, False]])
    np.testing.assert_array_equal(previews.normal_image(normal, mask), [[[0.5, 0.5, 1.0], [0.0, 0.0, 0.0]]])
    np.testing.assert_array_equal(previews.normal_image(normal, mask, background=1.0)[0, 1], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(previews.ink_image(np.array([0.0, 1.0, 0.25])), [1.0, 0.0, 0.75])

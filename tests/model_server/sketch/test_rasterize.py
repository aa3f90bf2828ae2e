import numpy as np
import pytest
from PIL import Image

from model_server.sketch.rasterize import load_png_sketch, rasterize_strokes
from sketch2mesh_addon.protocol import ProtocolError


def test_line_is_antialiased_and_two_pixels_wide():
    ink = rasterize_strokes([np.array([[-0.5, 0.1, 1.0], [0.5, 0.1, 1.0]])])
    assert ink.shape == (256, 256) and ink.dtype == np.float32
    column = ink[:, 128]
    assert column.sum() == pytest.approx(2.0, abs=0.05)        # width 2 px at full pressure
    assert 0.0 < column[(column > 0) & (column < 1)].size <= 2  # soft edges, at most one per side
    assert ink[:, :60].max() == 0.0                             # nothing beyond the caps


def test_width_follows_pressure():
    light = rasterize_strokes([np.array([[-0.5, 0.0, 0.1], [0.5, 0.0, 0.1]])])
    heavy = rasterize_strokes([np.array([[-0.5, 0.0, 1.0], [0.5, 0.0, 1.0]])])
    assert light[:, 128].sum() < 0.7 * heavy[:, 128].sum()


def test_single_point_stroke_is_a_dot_and_outside_points_are_clipped():
    ink = rasterize_strokes([np.array([[0.0, 0.0, 1.0]]), np.array([[2.0, 2.0, 1.0], [3.0, 2.0, 1.0]])])
    assert 0 < np.count_nonzero(ink) <= 16
    assert ink[126:130, 126:130].max() > 0.5


def test_hundred_thousand_points_rasterise():
    t = np.linspace(0.0, 2.0 * np.pi, 100_000)
    spiral = np.stack([0.1 * t * np.cos(40 * t), 0.1 * t * np.sin(40 * t), np.ones_like(t)], axis=1)
    ink = rasterize_strokes([spiral])
    assert ink.max() == 1.0 and ink.sum() > 1000


def _save(path, array, mode="L"):
    Image.fromarray(array.astype(np.uint8), mode).save(path)
    return path


def test_png_loads_as_ink_at_256(tmp_path):
    img = np.full((512, 512), 255, np.uint8)
    img[100:400, 200:203] = 0
    ink = load_png_sketch(_save(tmp_path / "s.png", img))
    assert ink.shape == (256, 256) and ink.dtype == np.float32
    assert ink.max() == pytest.approx(1.0) and ink.min() == 0.0
    assert ink[128, 100:102].max() > 0.9 and ink[128, 10] == 0.0


def test_transparent_background_reads_as_paper(tmp_path):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[20:40, 30, 3] = 255  # opaque black line, transparent elsewhere
    ink = load_png_sketch(_save(tmp_path / "a.png", rgba, "RGBA"))
    assert ink[0, 0] == 0.0 and ink.max() == pytest.approx(1.0)


@pytest.mark.parametrize("case, words", [
    ("missing", "does not exist"),
    ("corrupt", "corrupt"),
    ("nonsquare", "square"),
    ("blank", "blank"),
    ("black", "dark"),
])
def test_bad_png_raises_bad_input(tmp_path, case, words):
    path = tmp_path / f"{case}.png"
    if case == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    elif case == "nonsquare":
        _save(path, np.full((100, 80), 255))
    elif case == "blank":
        _save(path, np.full((100, 100), 250))
    elif case == "black":
        _save(path, np.zeros((100, 100)))
    with pytest.raises(ProtocolError) as err:
        load_png_sketch(path)
    assert err.value.code == "bad_input"
    assert words in err.value.message and "\n" not in err.value.message

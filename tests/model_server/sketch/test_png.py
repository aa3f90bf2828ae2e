import numpy as np
import pytest
from PIL import Image

from model_server.errors import Refused
from model_server.sketch.png import load_png_sketch


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
    with pytest.raises(Refused) as err:
        load_png_sketch(path)
    assert err.value.code == "bad_input"
    assert words in err.value.message and "\n" not in err.value.message

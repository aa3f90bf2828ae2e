import numpy as np
import pytest

from model_server.errors import Refused
from model_server.sketch.align import MAX_MISMATCH, VerticalAlignment, align_side_to_front, vertical_span

RES = 256


def band(bottom: float, top: float) -> np.ndarray:
    """A silhouette spanning canvas v from ``bottom`` to ``top`` (edges on pixel edges)."""
    mask = np.zeros((RES, RES), bool)
    mask[int(round((1.0 - top) * RES / 2)):int(round((1.0 - bottom) * RES / 2)), 100:150] = True
    return mask


def test_span_is_measured_at_the_pixel_edges():
    assert vertical_span(band(-0.5, 0.25)) == pytest.approx((-0.5, 0.25))


def test_the_side_is_scaled_and_moved_onto_the_front():
    lo, hi = -52 / 128, 68 / 128                                      # 120 px tall against the front's 128
    alignment = align_side_to_front(band(-0.5, 0.5), band(lo, hi))
    assert alignment.scale == pytest.approx(128 / 120)
    assert alignment.scale * lo + alignment.shift == pytest.approx(-0.5)
    assert alignment.scale * hi + alignment.shift == pytest.approx(0.5)
    moved = alignment.image(band(lo, hi), order=0)
    assert vertical_span(moved) == pytest.approx((-0.5, 0.5), abs=1.0 / RES)
    strokes = alignment.strokes([np.array([[0.0, lo, 1.0], [0.3, hi, 0.5]])])
    np.testing.assert_allclose(strokes[0], [[0.0, -0.5, 1.0], [0.3, 0.5, 0.5]])
    assert alignment.note() == "The side view was scaled by 1.07 to match the front's height."


def test_equal_heights_only_move_and_say_so():
    alignment = align_side_to_front(band(-0.5, 0.5), band(-0.5 + 6 / 128, 0.5 + 6 / 128))
    assert alignment.scale == pytest.approx(1.0) and alignment.shift == pytest.approx(-6 / 128)
    assert alignment.note() == "The side view was moved down by 5% of its height to line up with the front."
    assert VerticalAlignment().note() is None


def test_views_too_different_are_left_as_drawn_and_the_user_told():
    alignment = align_side_to_front(band(-0.5, 0.5), band(-0.5, 0.5 - 2 * MAX_MISMATCH - 2 / 128))
    assert (alignment.scale, alignment.shift) == (1.0, 0.0) and alignment.mismatch > MAX_MISMATCH
    assert alignment.note().startswith("The front and side views differ in height by 22%, too much to line")


def test_views_that_share_no_height_are_refused():
    with pytest.raises(Refused, match="share no volume") as error:
        align_side_to_front(band(-0.5, 0.5), band(0.6, 0.9))
    assert error.value.code == "bad_input"

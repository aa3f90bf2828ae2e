"""The learned backend's field: what the network sees, and how its roundness and carving
make a solid that starts at the round prior, never leaves the hull and keeps thin parts."""

from __future__ import annotations

import numpy as np
import pytest

from model_server.geometry.views import RESOLUTION
from model_server.reconstruct.backends import learned_field as lf
from model_server.reconstruct.backends.hull import HullField
from model_server.reconstruct.backends.round import RoundField

N = lf.COARSE


def canvas(rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((RESOLUTION, RESOLUTION), bool)
    mask[rows, cols] = True
    return mask


@pytest.fixture(scope="module")
def box() -> dict[str, np.ndarray]:
    """A box: 1.0 wide, 0.6 deep, 0.8 tall."""
    return {"front": canvas(slice(76, 180), slice(64, 192)), "side": canvas(slice(76, 180), slice(90, 166))}


@pytest.fixture(scope="module")
def lamp() -> dict[str, np.ndarray]:
    """A thick shade on a stem 4 pixels wide, the same from the front and the side."""
    mask = canvas(slice(40, 100), slice(70, 186)) | canvas(slice(100, 220), slice(126, 130))
    return {"front": mask, "side": mask}


def points_around(count: int = 4000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.7, 0.7, (count, 3))


def test_unanswered_it_is_the_round_prior_and_t_zero_is_the_hull(box):
    field, prior, hull = lf.LearnedField(box), RoundField(box), HullField(box)
    points = points_around()
    assert np.allclose(field.value_and_gradient(points)[0], prior.value_and_gradient(points)[0], atol=1e-6)
    assert np.allclose(field.grid(40, -1, 1), prior.grid(40, -1, 1), atol=1e-5)
    field.answer(np.zeros((N,) * 3), np.zeros((N,) * 3))
    assert np.allclose(field.value_and_gradient(points)[0], hull.value(points), atol=1e-6)
    assert np.allclose(field.grid(40, -1, 1), hull.grid(40, -1, 1), atol=1e-5)


def test_any_answer_stays_inside_the_hull_and_half_roundness_lies_between(box):
    rng = np.random.default_rng(1)
    field, hull, prior = lf.LearnedField(box), HullField(box), RoundField(box)
    points = points_around()
    field.answer(rng.uniform(0, 1, (N,) * 3), rng.uniform(0, 0.1, (N,) * 3))
    assert (field.value_and_gradient(points)[0] >= hull.value(points) - 1e-6).all()
    field.answer(np.full((N,) * 3, 0.5), np.zeros((N,) * 3))
    value = field.value_and_gradient(points)[0]
    low, high = hull.value(points), prior.value_and_gradient(points)[0]
    assert (value >= low - 1e-6).all() and (value <= high + 1e-6).all()
    assert np.allclose(value, 0.5 * (low + high), atol=1e-6)


def test_the_gradient_matches_finite_differences(box):
    axis = lf.grid_axis(N)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    field = lf.LearnedField(box)
    # the answers as given, without the outline rule's cuts: this checks the reading's calculus
    field._take(0.5 + 0.4 * np.sin(2 * x) * np.cos(y), 0.02 * (1 + np.cos(3 * z)))
    points = points_around(500, seed=2)
    step = 1e-4
    value, gradient = field.value_and_gradient(points)
    numeric = np.stack([(field.value_and_gradient(points + step * e)[0]
                         - field.value_and_gradient(points - step * e)[0]) / (2 * step) for e in np.eye(3)], 1)
    error = np.linalg.norm(gradient - numeric, axis=1)
    # the priors' own gradients are of smoothed, bilinearly read 2D fields, and their kinks and the
    # fade's band are not differentiable: most points still agree closely
    assert np.median(error) < 0.01 and np.mean(error < 0.05) > 0.9


def silhouettes_of(field: lf.LearnedField) -> list[np.ndarray]:
    """Its front (x, z) and side (y, z) silhouettes on the training grid."""
    inside = field.grid(lf.FINE, -1.0, 1.0) < 0
    return [inside.any(axis=1), inside.any(axis=0)]


def test_carving_never_empties_what_the_drawing_shows(lamp):
    """Told to carve everything a world unit deep, the lamp keeps its stem (too thin to
    carve) and its shade (carving that would empty its outline is switched off)."""
    field = lf.LearnedField(lamp)
    before = silhouettes_of(field)
    stem = np.array([[0.0, 0.0, -0.5]])     # the stem's axis, below the shade
    shade = np.array([[0.0, 0.0, 0.45]])
    field.answer(np.ones((N,) * 3), np.full((N,) * 3, 1.0))
    assert field.value_and_gradient(stem)[0][0] < 0 and field.value_and_gradient(shade)[0][0] < 0
    assert all(np.array_equal(a, b) for a, b in zip(silhouettes_of(field), before))


def test_carving_opens_a_cavity_the_outlines_do_not_show(box):
    """A shaft carved down the middle of the box, top to bottom (a mug's inside): it stays
    open, and the front and side silhouettes stay as drawn."""
    axis = lf.grid_axis(N)
    x, y, _ = np.meshgrid(axis, axis, axis, indexing="ij")
    field = lf.LearnedField(box)
    before = silhouettes_of(field)
    field.answer(np.ones((N,) * 3), np.where((np.abs(x) < 0.2) & (np.abs(y) < 0.15), 1.0, 0.0))
    assert field.value_and_gradient(np.array([[0.0, 0.0, 0.0]]))[0][0] > 0
    assert all(np.array_equal(a, b) for a, b in zip(silhouettes_of(field), before))


def test_the_thickness_fade_runs_from_thin_to_thick():
    lo, hi = lf.PROTECT_WIDTH
    fade = lf.thickness_fade(np.array([0.0, lo, 0.5 * (lo + hi), hi, 1.0]), np.full(5, 1.0))
    assert np.allclose(fade, [0, 0, 0.5, 1, 1])
    assert lf.thickness_fade(np.array([1.0]), np.array([0.0]))[0] == 0   # the narrower interval decides


def test_inputs_show_the_fields_the_intervals_and_the_ink_where_it_was_drawn(box):
    field = lf.LearnedField(box)
    ink = np.zeros((RESOLUTION, RESOLUTION), np.float32)
    ink[100, :] = 1.0                        # a horizontal stroke across the front, at z = 1 - 100.5/128
    x = lf.network_inputs(field, {"front": ink, "side": np.zeros_like(ink)})
    assert x.shape == (lf.CHANNELS, N, N, N) and x.dtype == np.float32
    assert np.isfinite(x).all() and x.min() >= -1.0 and x.max() <= 1.0
    axis = lf.grid_axis(N)
    row = np.argmin(np.abs(axis - (1.0 - 100.5 / 128)))
    front_ink = x[6]
    assert front_ink[1:-1, :, row].min() > 0.5            # the stroke lifts onto every node at its height ...
    assert front_ink[:, :, row + 3].max() == 0            # ... and nowhere else
    assert x[8].max() == 0 and x[9].max() == 0            # no top drawn: no top ink, flag off
    centre = N // 2
    assert x[0][centre, centre, centre] < 0 and x[1][centre, centre, centre] < 0   # inside hull and prior
    assert abs(x[2][centre, centre, centre]) < 0.1         # the middle of its front interval


def test_training_grids_hold_hull_prior_and_fade_at_the_fine_resolution(box):
    grids = lf.training_grids(lf.LearnedField(box))
    assert grids.shape == (3, lf.FINE, lf.FINE, lf.FINE) and grids.dtype == np.float16
    hull, prior, fade = grids.astype(np.float32)
    assert (prior >= hull - 1e-3).all() and fade.min() >= 0 and fade.max() <= 1
    assert (prior < 0).sum() < (hull < 0).sum()           # the ellipses cut the box's corners

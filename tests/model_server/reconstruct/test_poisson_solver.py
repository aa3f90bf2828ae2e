"""Poisson in a helper process: the same surface as in this process, and a cancel stops it at once."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from scipy.spatial import cKDTree

from model_server import interrupt
from model_server.reconstruct import poisson_solver


def sphere_points(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return 0.8 * normals, normals


def test_the_helper_process_gives_the_same_surface():
    points, normals = sphere_points(4000)
    here = poisson_solver.solve_here(points, normals, 6)
    helper = poisson_solver.Helper()
    try:
        there = helper.solve(points, normals, 6, poisson_solver.SCALE)
    finally:
        helper.close()
    # Poisson runs on several threads, so vertex order (and the last float bits) vary from
    # call to call, in one process as across two: compare the surfaces, not the arrays.
    assert len(here[1]) > 500 and abs(len(here[1]) - len(there[1])) <= 0.01 * len(here[1])
    gap = cKDTree(there[0]).query(here[0])[0]
    assert gap.max() < 1e-4
    np.testing.assert_allclose(np.sort(here[2]), np.sort(there[2]), rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_a_cancel_stops_a_solve_in_the_helper_within_a_fraction_of_a_second():
    points, normals = sphere_points(200_000)
    helper = poisson_solver.Helper()
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(interrupt.Interrupted), interrupt.cancellable(cancel):
        helper.solve(points, normals, 11, poisson_solver.SCALE)       # takes far longer than a second
    assert time.monotonic() - started < 1.0 + 0.5
    assert not helper._process.is_alive()

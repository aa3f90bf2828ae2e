"""The wire protocol's names agree with the core's.

The add-on ships without the server, so ``sketch2mesh_addon.protocol`` carries its own
list of backends, detail levels, views and limits for the add-on's UI and for checking
requests; the core defines the same facts where they live. These tests keep the two in
step: a backend or detail level added on one side only fails here.
"""

from __future__ import annotations

import pytest

from sketch2mesh_addon import protocol

from model_server.errors import Refused
from model_server.fit.limits import MAX_ITERATIONS
from model_server.geometry.views import INPUT_VIEWS
from model_server.reconstruct import backends
from model_server.reconstruct.fusion import DETAILS
from model_server.sketch.read import MAIN_VIEWS


def test_backends_and_detail_levels_match():
    assert protocol.BACKENDS == backends.BACKENDS
    assert protocol.DETAILS == tuple(DETAILS)


def test_views_and_limits_match():
    assert protocol.VIEW_NAMES == tuple(INPUT_VIEWS)
    assert protocol.MAIN_VIEWS == MAIN_VIEWS
    assert protocol.MAX_FIT_ITERATIONS == MAX_ITERATIONS


def test_defaults_match():
    assert protocol.DEFAULT_BACKEND == backends.DEFAULT_BACKEND
    assert protocol.DEFAULT_ROUNDNESS == backends.DEFAULT_ROUNDNESS


def test_the_roundness_range_is_the_cores():
    lo, hi = protocol.ROUNDNESS_RANGE
    for value in (lo, hi, protocol.DEFAULT_ROUNDNESS):
        backends.check_roundness(value)
    for value in (lo - 1e-6, hi + 1e-6):
        with pytest.raises(Refused):
            backends.check_roundness(value)

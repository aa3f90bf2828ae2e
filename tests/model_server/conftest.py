"""Synthetic clean line drawings shared by the model-server tests."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest


def circle(radius: float = 0.6, cx: float = 0.0, cy: float = 0.0, n: int = 200, sy: float = 1.0) -> np.ndarray:
    """A closed circle (or ellipse, with ``sy``) stroke of (u, v, pressure) points."""
    t = np.linspace(0.0, 2.0 * np.pi, n)
    return np.stack([cx + radius * np.cos(t), cy + sy * radius * np.sin(t), np.ones_like(t)], axis=1)


def polygon(corners: list[tuple[float, float]], samples_per_side: int = 1) -> np.ndarray:
    """A closed polygon stroke through ``corners``."""
    c = np.array(list(corners) + [corners[0]], float)
    t = np.linspace(0.0, 1.0, samples_per_side, endpoint=False)
    pts = np.concatenate([a + t[:, None] * (b - a) for a, b in zip(c[:-1], c[1:])] + [c[-1:]])
    return np.concatenate([pts, np.ones((len(pts), 1))], axis=1)


SKETCHES: dict[str, dict[str, list[np.ndarray]]] = {
    "sphere": {"front": [circle()], "side": [circle()]},
    "box": {"front": [polygon([(-0.5, -0.7), (0.5, -0.7), (0.5, 0.6), (-0.5, 0.6)])],
            "side": [polygon([(-0.3, -0.7), (0.3, -0.7), (0.3, 0.6), (-0.3, 0.6)])]},
    "L": {"front": [polygon([(-0.6, -0.7), (0.6, -0.7), (0.6, -0.3), (-0.2, -0.3), (-0.2, 0.7), (-0.6, 0.7)])],
          "side": [polygon([(-0.4, -0.7), (0.4, -0.7), (0.4, 0.7), (-0.4, 0.7)])]},
    "mug": {"front": [polygon([(-0.4, -0.6), (0.4, -0.6), (0.4, -0.3), (0.7, -0.3), (0.7, 0.3), (0.4, 0.3), (0.4, 0.6), (-0.4, 0.6)]),
                      polygon([(0.45, -0.15), (0.6, -0.15), (0.6, 0.15), (0.45, 0.15)])],
            "side": [circle(0.4, n=100, sy=1.5)]},
}


@pytest.fixture(params=sorted(SKETCHES))
def sketch_name(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def sketches() -> dict[str, dict[str, list[np.ndarray]]]:
    return SKETCHES


@pytest.fixture(name="circle", scope="session")
def circle_fixture():
    return circle


@pytest.fixture(name="polygon", scope="session")
def polygon_fixture():
    return polygon


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch thread: its tensors are small, and on a shared 2-core
    machine extra intra-op threads cost far more than they save."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The server tests share a harness module (a real server process and its requests).
sys.path.insert(0, str(Path(__file__).resolve().parent))

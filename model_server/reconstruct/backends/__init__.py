"""Backends: the sketch's ink images and filled silhouettes in, the 14 views' maps out.

Every backend has the same small interface, :class:`Backend`, so the pipeline and fusion
never know which one ran. ``load(name, weights, device)`` builds one by name:

- ``hull``: the visual hull of the silhouettes (:mod:`.hull`), no learning.
- ``round`` (the default): the rounded prior (:mod:`.round`), no learning: each height's cross-section
  of the hull is rounded into the superellipses inscribed in it; ``roundness`` in [0, 1]
  runs from the hull's rectangles (0) to ellipses (1).
- ``learned``: the round prior rounded, kept boxy or carved by the trained network
  (:mod:`.learned`, with what it sees and how its answer becomes a solid in
  :mod:`.learned_field`). Its weights ship in the
  package; ``--weights`` names another checkpoint that ``train`` wrote.

Backends are imported only when loaded: the hull pulls in open3d, the network torch. A
loaded learned backend is kept (per weights file and device), so a warm server does not
read its weights again for every sketch.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Protocol

import numpy as np

from model_server.errors import BAD_REQUEST, Refused
from model_server.geometry.maps import Maps

BACKENDS = ("learned", "round", "hull")
DEFAULT_ROUNDNESS = 1.0
DEFAULT_BACKEND = "round"   # measured best on kinds of shapes no backend was tuned on (README)


class Backend(Protocol):
    """Predicts the 14 views' depth, normal and mask maps of the sketched object."""

    name: str
    depth_tolerance_px: float   # how far in front of another view's surface fusion lets a point lie
    prune_votes: int            # how many views must contradict a point for fusion to drop it
    predicted: bool             # True when its outlines may drift from the drawn ones (the pipeline then checks)

    def predict(self, inks: dict[str, np.ndarray], silhouettes: dict[str, np.ndarray], res: int) -> Maps:
        """``inks`` and ``silhouettes``: view name ('front', 'side', optionally 'top') ->
        (res, res) ink in [0, 1] and bool filled silhouette, on the canonical [-1, 1] canvases."""
        ...


def check_name(name: str) -> None:
    """Refuse a backend name that is not one of BACKENDS (before any work is done)."""
    if name not in BACKENDS:
        raise Refused(BAD_REQUEST, f"backend must be one of {', '.join(BACKENDS)}, not {name!r}")


def check_roundness(roundness: float) -> None:
    """Refuse a roundness outside [0, 1] (before any work is done)."""
    if not isinstance(roundness, (int, float)) or isinstance(roundness, bool) or not 0.0 <= roundness <= 1.0:
        raise Refused(BAD_REQUEST, f"roundness must be a number from 0 to 1, not {roundness!r}")


def load(name: str, weights: str | Path | None = None, device: str = "cpu",
         roundness: float = DEFAULT_ROUNDNESS) -> Backend:
    """The backend called ``name``; ``weights`` is the learned backend's checkpoint (the
    shipped one when None), ``roundness`` the round backend's control. Raises Refused for
    an unknown name, a roundness outside [0, 1], or a missing or unreadable weights file
    (one sentence naming the path)."""
    check_name(name)
    check_roundness(roundness)
    if name == "hull":
        from model_server.reconstruct.backends.hull import HullBackend

        return HullBackend()
    if name == "round":
        from model_server.reconstruct.backends.round import RoundBackend

        return RoundBackend(float(roundness))
    from model_server.reconstruct.backends.learned import weights_file

    path = weights_file(weights).resolve()
    return _learned(path, path.stat().st_mtime_ns, device)


@functools.lru_cache(maxsize=4)
def _learned(path: Path, stamp: int, device: str) -> Backend:
    """The learned backend for a weights file (as it was at ``stamp``) and device, kept loaded."""
    from model_server.reconstruct.backends.learned import LearnedBackend

    return LearnedBackend(path, device)

"""Backends: the sketch's ink images and filled silhouettes in, the 14 views' maps out.

Every backend has the same small interface, :class:`Backend`, so the pipeline and fusion
never know which one ran. ``load(name, weights, device)`` builds one by name:

- ``hull``: the visual hull of the silhouettes (:mod:`.hull`), no learning.
- ``learned``: the trained multi-view network. It is not shipped yet (it is the next
  piece of work); asking for it is refused with a sentence that names the hull backend.
  This is the one place that will load its weights, so ``--weights`` comes here.

Backends are imported only when loaded: the hull pulls in open3d, the network torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from model_server.errors import BAD_INPUT, BAD_REQUEST, UNAVAILABLE, Refused
from model_server.geometry.maps import Maps

BACKENDS = ("learned", "hull")
LEARNED_UNAVAILABLE = ("The learned backend is not shipped yet (its trained weights are coming); "
                       "choose the Hull backend (--backend hull).")


class Backend(Protocol):
    """Predicts the 14 views' depth, normal and mask maps of the sketched object."""

    name: str

    def predict(self, inks: dict[str, np.ndarray], silhouettes: dict[str, np.ndarray], res: int) -> Maps:
        """``inks`` and ``silhouettes``: view name ('front', 'side', optionally 'top') ->
        (res, res) ink in [0, 1] and bool filled silhouette, on the canonical [-1, 1] canvases."""
        ...


def check_name(name: str) -> None:
    """Refuse a backend name that is not one of BACKENDS (before any work is done)."""
    if name not in BACKENDS:
        raise Refused(BAD_REQUEST, f"backend must be one of {', '.join(BACKENDS)}, not {name!r}")


def load(name: str, weights: str | Path | None = None, device: str = "cpu") -> Backend:
    """The backend called ``name``; ``weights`` is the learned backend's checkpoint (the
    shipped one when None). Raises Refused for an unknown name, a missing weights file,
    or a backend that is not available."""
    check_name(name)
    if name == "hull":
        from model_server.reconstruct.backends.hull import HullBackend

        return HullBackend()
    if weights is not None and not Path(weights).is_file():
        raise Refused(BAD_INPUT, f"The weights file {weights} does not exist.")
    raise Refused(UNAVAILABLE, LEARNED_UNAVAILABLE)

"""Backend 'learned': the round prior, rounded, kept boxy or carved where a trained network says.

The sketch's round prior (:mod:`.round`) is the network's starting point and its input,
with the hull's field, the row intervals and the ink (:mod:`.learned_field`). On a coarse
grid around the canvas the network (``FieldNet``) answers a roundness between the hull's
box and the prior's ellipses, and a carving for cavities and holes; the solid they make is
rendered into the 14 views' maps like the priors' (:func:`.hull.field_maps`). The weights
are the ones shipped in this package (``weights/learned.pt``, fp16) unless ``--weights``
names another checkpoint that ``train`` wrote. Inference is deterministic: eval mode, no
dropout, and the same threads every call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model_server import interrupt
from model_server.errors import UNAVAILABLE, Refused
from model_server.geometry.maps import Maps

SHIPPED_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "learned.pt"


def weights_file(weights: str | Path | None = None) -> Path:
    """The learned backend's weights file: ``weights``, or the shipped one when None.
    Raises Refused, one sentence naming it, when there is no such file. (This module
    imports the field and the renderer only to predict, so the command line can ask this
    without loading them.)"""
    path = Path(weights) if weights is not None else SHIPPED_WEIGHTS
    if not path.is_file():
        raise Refused(UNAVAILABLE, f"The weights file {path} does not exist.")
    return path


class LearnedBackend:
    """The ``learned`` backend: the round prior refined by a trained ``FieldNet``."""

    name = "learned"
    depth_tolerance_px = 2.0      # its maps are exact renderings of one solid, like the priors'
    prune_votes = 1
    predicted = False             # its outlines are the round prior's: carving keeps off them (learned_field)

    def __init__(self, path: Path, device: str = "cpu") -> None:
        """Load the network from ``path``, a weights file :func:`weights_file` found
        (``backends.load`` checks it once and keeps the backend loaded)."""
        import torch

        from model_server.learning.checkpoint import load_model

        try:
            self.model = load_model(path, device)
        except ValueError as exc:
            if "network is not this version's" in str(exc):
                raise Refused(UNAVAILABLE, f"The weights file {path} holds an earlier design's network; "
                                         "train a new one (train) or leave --weights out for the shipped weights.") from None
            raise Refused(UNAVAILABLE, f"The weights file {path} is not a checkpoint that `train` or `export-weights` "
                                     "wrote; give another --weights or leave it out for the shipped weights.") from None
        except (RuntimeError, KeyError, TypeError):
            raise Refused(UNAVAILABLE, f"The weights file {path} is not a checkpoint that `train` or `export-weights` "
                                     "wrote; give another --weights or leave it out for the shipped weights.") from None
        self.torch, self.device = torch, torch.device(device)

    def predict(self, inks: dict[str, np.ndarray], silhouettes: dict[str, np.ndarray], res: int) -> Maps:
        """The maps of the solid the network makes of ``silhouettes`` and ``inks``."""
        from model_server.reconstruct.backends.hull import field_maps
        from model_server.reconstruct.backends.learned_field import LearnedField, network_inputs

        field = LearnedField(silhouettes)
        x = network_inputs(field, inks)
        interrupt.checkpoint()
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(x)[None].to(self.device))
        field.answer(out["t"][0].float().cpu().numpy(), out["c"][0].float().cpu().numpy())
        interrupt.checkpoint()
        return field_maps(field, res)

"""Backend 'learned': the visual hull's maps, refined by the trained network (``RefineNet``).

The hull (:mod:`.hull`) is computed exactly as the hull backend does; the network looks at
it and the sketch's ink (:func:`.refine_maps.network_inputs`) and says how much deeper the
surface lies, which hull pixels do not show the object, and how the normals turn;
:func:`.refine_maps.refined_maps` applies that conservatively. The weights are the ones
shipped in this package (``weights/refine.pt``, fp16) unless ``--weights`` names another
checkpoint that ``train`` wrote. Inference is deterministic: eval mode, no dropout, and the
same threads every call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model_server import interrupt
from model_server.errors import UNAVAILABLE, Refused
from model_server.geometry.maps import Maps
from model_server.reconstruct.backends.hull import field_maps, hull_maps
from model_server.reconstruct.backends.learned_field import LearnedField
from model_server.reconstruct.backends.learned_field import network_inputs as learned_field_inputs
from model_server.reconstruct.backends.refine_maps import NET_RESOLUTION, network_inputs, refined_maps

SHIPPED_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "refine.pt"
FUSION_DEPTH_TOLERANCE_PX = 6.0   # predicted views disagree by a few pixels; fusion must not prune them as exact
FIELD_DEPTH_TOLERANCE_PX = 2.0   # the field design's maps are exact renderings of one solid, like the priors'
FUSION_PRUNE_VOTES = 3            # ... so a point goes only when three views say it is not on the object


class LearnedBackend:
    """The ``learned`` backend: hull maps refined by a trained :class:`RefineNet`."""

    name = "learned"
    depth_tolerance_px = FUSION_DEPTH_TOLERANCE_PX
    prune_votes = FUSION_PRUNE_VOTES
    predicted = True              # its outlines may drift from the sketch: the pipeline checks them

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        import torch

        from model_server.learning.checkpoint import load_model

        path = Path(weights) if weights is not None else SHIPPED_WEIGHTS
        if not path.is_file():
            raise Refused(UNAVAILABLE, f"The weights file {path} does not exist.")
        try:
            self.model = load_model(path, device)
        except (ValueError, RuntimeError, KeyError, TypeError):
            raise Refused(UNAVAILABLE, f"The weights file {path} is not a checkpoint that `train` or `export-weights` "
                                     "wrote; give another --weights or leave it out for the shipped weights.") from None
        self.design = self.model.config.get("design", "multiview")
        if self.design not in ("refine", "field"):
            raise Refused(UNAVAILABLE, f"The weights file {path} holds a {self.design} network; the learned backend "
                                     "runs the field design (train --design field).")
        if self.design == "field":
            self.depth_tolerance_px, self.prune_votes = FIELD_DEPTH_TOLERANCE_PX, 1
        self.torch, self.device = torch, torch.device(device)

    def predict(self, inks: dict[str, np.ndarray], silhouettes: dict[str, np.ndarray], res: int) -> Maps:
        """The maps of the solid the network makes of ``silhouettes`` and ``inks``."""
        if self.design == "field":
            return self._predict_field(inks, silhouettes, res)
        if res % NET_RESOLUTION:
            raise ValueError(f"the learned backend needs a map resolution that is a multiple of {NET_RESOLUTION}")
        hull = hull_maps(silhouettes, res)
        interrupt.checkpoint()
        x = network_inputs(hull, inks)
        interrupt.checkpoint()
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(x)[None].to(self.device))
        answer = {k: out[k][0].float().cpu().numpy() for k in ("offset", "mask_logit", "normal_correction")}
        interrupt.checkpoint()
        return refined_maps(hull, answer["offset"], 1.0 / (1.0 + np.exp(-answer["mask_logit"])),
                            answer["normal_correction"])

    def _predict_field(self, inks: dict[str, np.ndarray], silhouettes: dict[str, np.ndarray], res: int) -> Maps:
        """The field design: the round prior of ``silhouettes``, rounded, kept boxy or carved
        where the network says (:mod:`.learned_field`), rendered into the 14 views."""
        field = LearnedField(silhouettes)
        x = learned_field_inputs(field, inks)
        interrupt.checkpoint()
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(x)[None].to(self.device))
        field.answer(out["t"][0].float().cpu().numpy(), out["c"][0].float().cpu().numpy())
        interrupt.checkpoint()
        return field_maps(field, res)

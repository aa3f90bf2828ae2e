"""The per-view maps a backend predicts and fusion consumes.

For each of the 14 views (see :mod:`model_server.geometry.views`): a depth map (world units, along
the view direction, 0 on background), a normal map (unit, camera frame, 0 on background)
and a mask in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_server.geometry.views import NUM_VIEWS


@dataclass
class Maps:
    """depth (V, H, W) float32, normal (V, H, W, 3) float32, mask (V, H, W) float32."""

    depth: np.ndarray
    normal: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        self.depth = np.asarray(self.depth, np.float32)
        self.normal = np.asarray(self.normal, np.float32)
        self.mask = np.asarray(self.mask, np.float32)
        v, h, w = self.depth.shape
        if h != w or self.mask.shape != (v, h, w) or self.normal.shape != (v, h, w, 3):
            raise ValueError(f"inconsistent map shapes {self.depth.shape}, {self.normal.shape}, {self.mask.shape}")

    @property
    def resolution(self) -> int:
        return self.depth.shape[1]

    @property
    def num_views(self) -> int:
        return self.depth.shape[0]

    def foreground(self, threshold: float = 0.5) -> np.ndarray:
        """Boolean (V, H, W): the pixels that show the object."""
        return self.mask >= threshold

    @classmethod
    def empty(cls, res: int, num_views: int = NUM_VIEWS) -> "Maps":
        """All-background maps, to be filled view by view."""
        return cls(np.zeros((num_views, res, res), np.float32), np.zeros((num_views, res, res, 3), np.float32),
                   np.zeros((num_views, res, res), np.float32))

"""The learned backend's network, ``FieldNet``, and its losses.

It works on a coarse grid over the canvas cube around the sketch's round prior
(:mod:`model_server.reconstruct.backends.learned_field` defines what it sees and how its
answers become a solid). A small 3D U-Net: per node it answers a roundness ``t`` in [0, 1]
(0 keeps the visual hull's box, 1 the round prior's ellipses) and a carving ``c`` >= 0
(cavities, holes, the gaps between legs no silhouette shows; never on the drawn outlines).
At the bottleneck every node
also sees the mean of all nodes' features, so local choices know the whole shape. A new
network starts at the round prior: t near 1, no carving.

Tensor layouts: input (B, C, n, n, n); answers 't' and 'c' (B, n, n, n); training grids
(B, 3, N, N, N) (hull, round prior, thickness fade) and occupancy (B, N, N, N).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model_server.reconstruct.backends.learned_field import (CARVE_SCALE, CHANNELS, COARSE, SURFACE_WIDTH, UV_CHANNELS,
                                                            UV_SCALE, rim_fade, solid)

CONFIG: dict[str, Any] = {
    "design": "field",
    "resolution": COARSE,  # nodes per axis of the input grid
    "channels": CHANNELS,  # input channels per node
    "width": 16,           # channels at full resolution, doubling per level up to 4x
    "depth": 3,            # levels below full resolution (32 -> 4 nodes per axis)
}
TERMS = ("occupancy", "carving", "roundness")   # the training terms, in their log order
ROUNDNESS_START = 2.0     # the roundness head starts at sigmoid(2) = 0.88: close to the round prior
CARVE_START = -4.0        # ... and the carving head at softplus(-4) = 0.018 of CARVE_SCALE: almost none
CARVE_WEIGHT = 0.2       # L1 on carving (per 0.01 world units), so the network carves only where the truth is empty
ROUND_WEIGHT = 1.0       # L1 on boxiness (1 - t) inside the hull: on kinds it never saw the round prior is the
                         # safest guess, so the network leaves it only where its training shapes agree


def complete_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` over the defaults, checked: the grid must halve ``depth`` times to >= 2 nodes.
    Raises ValueError for another design or unknown settings."""
    full = {**CONFIG, **config}
    if full["design"] != "field":
        raise ValueError(f"a {full['design']} network is not this version's (the learned backend runs the field design)")
    unknown = set(full) - set(CONFIG)
    if unknown:
        raise ValueError(f"unknown network settings: {', '.join(sorted(unknown))}")
    res, depth = int(full["resolution"]), int(full["depth"])
    if depth < 1 or res % 2**depth or res // 2**depth < 2:
        raise ValueError(f"resolution {res} cannot be halved {depth} times down to at least 2 nodes")
    return full


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class _Block3(nn.Module):
    """A 3x3x3 conv (stride 1 or 2), then one with a residual connection."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Conv3d(cin, cout, 3, stride, 1), _norm(cout), nn.LeakyReLU(0.2, inplace=True))
        self.second = nn.Sequential(nn.Conv3d(cout, cout, 3, 1, 1), _norm(cout), nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        return x + self.second(x)


class FieldNet(nn.Module):
    """Roundness and carving per node of the coarse grid around a sketch's round prior."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = complete_config(config or {})
        c = self.config
        widths = [c["width"] * min(2**i, 4) for i in range(c["depth"] + 1)]
        self.stem = _Block3(c["channels"], widths[0], 1)
        self.down = nn.ModuleList(_Block3(widths[i], widths[i + 1], 2) for i in range(c["depth"]))
        self.mix = nn.Sequential(nn.Conv3d(2 * widths[-1], widths[-1], 1), _norm(widths[-1]),
                                 nn.LeakyReLU(0.2, inplace=True))
        self.up = nn.ModuleList(nn.Sequential(nn.Conv3d(widths[i + 1] + widths[i], widths[i], 3, 1, 1),
                                              _norm(widths[i]), nn.LeakyReLU(0.2, inplace=True))
                                for i in reversed(range(c["depth"])))
        self.head = nn.Conv3d(widths[0], 2, 1)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.copy_(torch.tensor([ROUNDNESS_START, CARVE_START]))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, C, n, n, n). Returns float32 't' and 'c', each (B, n, n, n)."""
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        y = skips.pop()
        y = self.mix(torch.cat([y, y.mean(dim=(2, 3, 4), keepdim=True).expand_as(y)], dim=1))
        for block in self.up:
            skip = skips.pop()
            y = block(torch.cat([F.interpolate(y, size=skip.shape[-3:], mode="nearest"), skip], dim=1))
        out = self.head(y).float()
        u, v = (UV_SCALE * x[:, k].float() for k in UV_CHANNELS)
        return {"t": torch.sigmoid(out[:, 0]), "c": CARVE_SCALE * F.softplus(out[:, 1]) * rim_fade(u, v)}


def answers_on_grid(pred: dict[str, torch.Tensor], size: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """The answers t and c (each (B, N, N, N)) read trilinearly between the coarse nodes at the training grid's."""
    return tuple(F.interpolate(pred[k][:, None], size=size, mode="trilinear", align_corners=True)[:, 0]
                 for k in ("t", "c"))


def solid_on_grid(pred: dict[str, torch.Tensor], grids: torch.Tensor) -> torch.Tensor:
    """The solid's field (B, N, N, N) on the training grid: the answers read trilinearly
    between the coarse nodes, applied to the grids' hull, round prior and thickness fade."""
    t, c = answers_on_grid(pred, grids.shape[-3:])
    return solid(grids[:, 0], grids[:, 1], t, c, grids[:, 2])


def balanced_bce(logits: torch.Tensor, target: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over ``where``, as the mean of its inside mean and its outside
    mean: a solid fills a small part of the grid, and a plain mean would let the network
    buy a low loss by carving thin parts away."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    where = where.float()
    inside, outside = target * where, (1.0 - target) * where
    return 0.5 * ((bce * inside).sum() / inside.sum().clamp_min(1.0) + (bce * outside).sum() / outside.sum().clamp_min(1.0))


def losses(pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The training terms (TERMS): the balanced cross-entropy of the solid's soft occupancy
    (a step SURFACE_WIDTH wide) against the truth's, over the nodes in or near the hull
    (outside it nothing is predicted), the L1 carving penalty, and the L1 boxiness penalty
    where roundness changes the solid (inside the hull, where the prior lies deeper)."""
    grids = batch["grids"].float()
    t, c = answers_on_grid(pred, grids.shape[-3:])
    f = solid(grids[:, 0], grids[:, 1], t, c, grids[:, 2])
    near = grids[:, 0] < 2.0 * SURFACE_WIDTH
    occupancy = balanced_bce(-f / SURFACE_WIDTH, batch["occupancy"].float(), near)
    rounds = ((grids[:, 0] < 0) & (grids[:, 1] - grids[:, 0] > 0.1 * SURFACE_WIDTH)).float()
    boxiness = ((1.0 - t) * rounds).sum() / rounds.sum().clamp_min(1.0)
    return {"occupancy": occupancy, "carving": CARVE_WEIGHT * pred["c"].mean() / 0.01,
            "roundness": ROUND_WEIGHT * boxiness}


def build_model(config: dict[str, Any] | None = None) -> FieldNet:
    """A freshly initialised network of ``config`` (defaults filled in)."""
    return FieldNet(config)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

"""The multi-view network of Lun et al. (3DV 2017), its discriminator and its losses.

``MultiViewNet`` maps the stacked sketch views (front, side and an optional top) to
depth, normal and mask maps for each of the 14 output views of :mod:`model_server.geometry.views`.
It is a U-Net: one shared encoder, and one decoder per output view with skip connections
from the encoder. The 14 decoders run side by side as grouped convolutions, so each view
keeps its own weights (as in the paper) at the cost of one network pass.

``PatchDiscriminator`` is the conditional PatchGAN for the optional adversarial term:
it judges (sketch, 14-view maps) pairs patch by patch.

Tensor layouts: sketch input (B, C_in, R, R); maps depth (B, V, R, R), normal
(B, V, 3, R, R) unit in each view's camera frame, mask (B, V, R, R).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model_server.geometry.views import NUM_VIEWS

DEFAULT_CONFIG: dict[str, Any] = {
    "design": "multiview",  # the paper's sketch -> 14 decoders; "refine" is RefineNet's config
    "in_views": 3,        # 2: front, side; 3: front, side, optional top (+ a presence flag)
    "resolution": 256,    # the sketch and map resolution the network was trained at
    "width": 32,          # encoder channels at full resolution (doubling per level, capped at 8x)
    "depth": 6,           # encoder levels below full resolution (256 -> 4x4 bottleneck)
    "view_width": 8,      # channels of each view's decoder at full resolution (doubling, capped at 8x)
    "num_views": NUM_VIEWS,
}
INPUT_ORDER: tuple[str, ...] = ("front", "side", "top")   # sketch views in the order network_input stacks them
MAP_CHANNELS = 5          # per view: depth, normal xyz, mask logit
MAX_MULTIPLIER = 8
MASK_PRIOR = 0.1          # initial foreground probability (objects cover about a tenth of a view)


def complete_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` over its design's defaults, checked: the resolution must halve ``depth``
    times to >= 2 pixels. A config without a design is the paper's (``multiview``)."""
    if config.get("design", "multiview") == "refine":
        return _complete_refine_config(config)
    if config.get("design") == "field":
        return _complete_field_config(config)
    full = {**DEFAULT_CONFIG, **config}
    unknown = set(full) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"unknown network settings: {', '.join(sorted(unknown))}")
    if full["in_views"] not in (2, 3):
        raise ValueError("in_views must be 2 (front, side) or 3 (front, side, optional top)")
    res, depth = int(full["resolution"]), int(full["depth"])
    if depth < 1 or res % 2**depth or res // 2**depth < 2:
        raise ValueError(f"resolution {res} cannot be halved {depth} times down to at least 2x2 pixels")
    return full


def config_for(resolution: int, **overrides: Any) -> dict[str, Any]:
    """A default config for ``resolution``, with fewer levels when the image is small."""
    depth = min(DEFAULT_CONFIG["depth"], max(1, int(math.log2(resolution)) - 2))
    return complete_config({"resolution": resolution, "depth": depth, **overrides})


def input_channels(in_views: int) -> int:
    """Front and side ink, plus (for 3 views) the top ink and a top-present flag plane."""
    return 2 if in_views == 2 else 4


def network_input(sketch: torch.Tensor, top_present: torch.Tensor | None, in_views: int) -> torch.Tensor:
    """Stack ink images into the network input.

    sketch: (B, 3, R, R) or (B, 2, R, R) ink in [0, 1] (1 = darkest), views in INPUT_ORDER.
    top_present: (B,) bool; an absent top becomes a zero image with its flag plane at 0."""
    front_side = sketch[:, :2]
    if in_views == 2:
        return front_side
    b, _, h, w = sketch.shape
    present = torch.zeros(b, device=sketch.device) if top_present is None else top_present.to(sketch.dtype)
    top = sketch[:, 2:3] if sketch.shape[1] > 2 else torch.zeros_like(sketch[:, :1])
    flag = present.view(b, 1, 1, 1)
    return torch.cat([front_side, top * flag, flag.expand(b, 1, h, w)], dim=1)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class DownBlock(nn.Module):
    """Halve the resolution (4x4 stride-2 conv), then one 3x3 conv with a residual connection."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), _norm(cout, 8), nn.LeakyReLU(0.2, inplace=True))
        self.conv = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1), _norm(cout, 8), nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return x + self.conv(x)


class ViewUpBlock(nn.Module):
    """Double the resolution of all views' decoders at once and add their skip connection.

    Channels are grouped by view (``views`` groups), so every view has its own weights; each
    view reads the shared encoder feature through its own 1x1 projection."""

    def __init__(self, views: int, cin: int, cout: int, skip: int, second_conv: bool) -> None:
        super().__init__()
        self.up = nn.Conv2d(views * cin, views * cout, 3, 1, 1, groups=views)
        self.skip = nn.Conv2d(skip, views * cout, 1)
        self.norm = nn.Sequential(_norm(views * cout, views), nn.ReLU(inplace=True))
        self.conv = (nn.Sequential(nn.Conv2d(views * cout, views * cout, 3, 1, 1, groups=views),
                                   _norm(views * cout, views), nn.ReLU(inplace=True)) if second_conv else None)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.norm(self.up(x) + self.skip(skip))
        return x if self.conv is None else x + self.conv(x)


class MultiViewNet(nn.Module):
    """Sketch views -> per-view depth, unit normal and mask logit for ``num_views`` views."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = complete_config(config or {})
        c = self.config
        views, levels = c["num_views"], c["depth"]
        enc = [c["width"] * min(2**i, MAX_MULTIPLIER) for i in range(levels + 1)]
        dec = [c["view_width"] * min(2**i, MAX_MULTIPLIER) for i in range(levels + 1)]
        self.stem = nn.Sequential(nn.Conv2d(input_channels(c["in_views"]), enc[0], 3, 1, 1), _norm(enc[0], 8),
                                  nn.LeakyReLU(0.2, inplace=True))
        self.down = nn.ModuleList(DownBlock(enc[i], enc[i + 1]) for i in range(levels))
        self.bottleneck = nn.Sequential(nn.Conv2d(enc[-1], views * dec[-1], 1), _norm(views * dec[-1], views),
                                        nn.ReLU(inplace=True))
        # Full-resolution levels get one conv per view, the coarser ones two: most of the
        # compute sits at the top, most of the capacity at the bottom.
        self.up = nn.ModuleList(ViewUpBlock(views, dec[i + 1], dec[i], enc[i], second_conv=i >= 2)
                                for i in reversed(range(levels)))
        self.head = nn.Conv2d(views * dec[0], views * MAP_CHANNELS, 1, groups=views)
        # Start the masks at the background prior rather than at p = 0.5: Adam moves a bias by
        # about lr per step, so learning the prior from 0 would take thousands of steps.
        with torch.no_grad():
            self.head.bias.view(views, MAP_CHANNELS)[:, 4] = math.log(MASK_PRIOR / (1.0 - MASK_PRIOR))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, C_in, R, R) from :func:`network_input`. Returns float32 'depth' (B, V, R, R),
        'normal' (B, V, 3, R, R) unit length, and 'mask_logit' (B, V, R, R)."""
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        y = self.bottleneck(skips.pop())
        for block in self.up:
            y = block(y, skips.pop())
        b, _, h, w = y.shape
        out = self.head(y).float().view(b, self.config["num_views"], MAP_CHANNELS, h, w)
        return {"depth": out[:, :, 0], "normal": F.normalize(out[:, :, 1:4], dim=2, eps=1e-6),
                "mask_logit": out[:, :, 4]}


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: (sketch input, 14-view maps) -> a grid of real/fake logits."""

    def __init__(self, config: dict[str, Any], layers: int = 3) -> None:
        super().__init__()
        c = complete_config(config)
        width = c["width"]
        cin = input_channels(c["in_views"]) + c["num_views"] * MAP_CHANNELS
        chans = [width * min(2**i, MAX_MULTIPLIER) for i in range(layers)]
        body: list[nn.Module] = [nn.Conv2d(cin, chans[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for a, b in zip(chans[:-1], chans[1:]):
            body += [nn.Conv2d(a, b, 4, 2, 1), _norm(b, 8), nn.LeakyReLU(0.2, inplace=True)]
        body.append(nn.Conv2d(chans[-1], 1, 3, 1, 1))
        self.body = nn.Sequential(*body)

    def forward(self, sketch_input: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([sketch_input, maps], dim=1)).float()


def stack_maps(depth: torch.Tensor, normal: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, V*5, R, R) channels for the discriminator; depth and normal are zeroed on background,
    like the ground truth, so the mask is the only way to tell where the object is."""
    b, v, h, w = depth.shape
    m = mask.unsqueeze(2)
    return torch.cat([depth.unsqueeze(2) * m, normal * m, m], dim=2).view(b, v * MAP_CHANNELS, h, w)


def predicted_maps(pred: dict[str, torch.Tensor]) -> torch.Tensor:
    """The discriminator's view of a prediction (mask as a probability)."""
    return stack_maps(pred["depth"], pred["normal"], torch.sigmoid(pred["mask_logit"]))


def target_maps(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The discriminator's view of the ground truth."""
    return stack_maps(batch["depth"], batch["normal"], batch["mask"])


def balanced_bce(logits: torch.Tensor, target: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy as the mean of its foreground mean and its background mean
    (over ``where`` only, when given). Objects cover about a tenth of a view: a plain mean
    would weigh each foreground pixel ~10x less than the depth and normal terms, which are
    means over the foreground, and masks would barely be learned."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    where = torch.ones_like(target) if where is None else where.float()
    fg, bg = target * where, (1.0 - target) * where
    return 0.5 * ((bce * fg).sum() / fg.sum().clamp_min(1.0) + (bce * bg).sum() / bg.sum().clamp_min(1.0))


def map_losses(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The paper's reconstruction terms: L1 depth and L2 normals on the ground-truth foreground,
    and binary cross-entropy on the mask, balanced between object and background (see
    :func:`balanced_bce`). Each term is a mean per pixel of its kind."""
    fg = target["mask"].float()
    count = fg.sum().clamp_min(1.0)
    depth = ((pred["depth"] - target["depth"]).abs() * fg).sum() / count
    normal = ((pred["normal"] - target["normal"]).pow(2).sum(dim=2) * fg).sum() / count
    return {"depth": depth, "normal": normal, "mask": balanced_bce(pred["mask_logit"], fg)}


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Cross-entropy of patch logits against all-real or all-fake labels."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))


# --- Design 1: refine the visual hull ------------------------------------------------------------

REFINE_CONFIG: dict[str, Any] = {
    "design": "refine",
    "resolution": 128,    # NET_RESOLUTION of the inputs (reconstruct.backends.refine_maps)
    "channels": 9,        # INPUT_CHANNELS: hull depth, normal xyz, mask, lifted ink x3, top flag
    "width": 16,          # channels at full resolution, doubling per level up to 4x
    "depth": 4,           # levels below full resolution
    "embedding": 8,       # channels of the learned per-view code
    "num_views": NUM_VIEWS,
}
OFFSET_SCALE = 0.1        # world units per unit of the offset head's softplus
OFFSET_SLACK = 0.02       # the offset may be this slightly negative: drawn outlines are a little loose
REFINE_DEPTH_WEIGHT = 5.0  # depth errors are ~0.05 world units, mask and normal terms ~0.3


def _complete_refine_config(config: dict[str, Any]) -> dict[str, Any]:
    full = {**REFINE_CONFIG, **config}
    unknown = set(full) - set(REFINE_CONFIG)
    if unknown:
        raise ValueError(f"unknown network settings: {', '.join(sorted(unknown))}")
    res, depth = int(full["resolution"]), int(full["depth"])
    if depth < 1 or res % 2**depth or res // 2**depth < 2:
        raise ValueError(f"resolution {res} cannot be halved {depth} times down to at least 2x2 pixels")
    return full


class RefineNet(nn.Module):
    """Design 1: one small U-Net shared by all views refines each view's hull maps.

    Input (B, V, C, R, R) from ``refine_maps.network_inputs``; every view runs through the
    same weights, told apart by a learned per-view code. At the bottleneck each view also
    receives the mean of all views' features, so the views of one shape agree on what they
    carve. Outputs have :class:`MultiViewNet`'s layout: 'depth' (the hull's plus a
    non-negative offset), 'normal' (the hull's, corrected, unit), 'mask_logit' (very
    negative outside the hull: the result never leaves it), and the raw 'offset'."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = _complete_refine_config(config or {})
        c = self.config
        widths = [c["width"] * min(2**i, 4) for i in range(c["depth"] + 1)]
        self.embedding = nn.Parameter(torch.zeros(c["num_views"], c["embedding"]))
        self.stem = nn.Sequential(nn.Conv2d(c["channels"] + c["embedding"], widths[0], 3, 1, 1),
                                  _norm(widths[0], 8), nn.LeakyReLU(0.2, inplace=True))
        self.down = nn.ModuleList(DownBlock(widths[i], widths[i + 1]) for i in range(c["depth"]))
        self.mix = nn.Sequential(nn.Conv2d(2 * widths[-1], widths[-1], 1), _norm(widths[-1], 8),
                                 nn.LeakyReLU(0.2, inplace=True))
        self.up = nn.ModuleList(nn.Sequential(nn.Conv2d(widths[i + 1] + widths[i], widths[i], 3, 1, 1),
                                              _norm(widths[i], 8), nn.LeakyReLU(0.2, inplace=True))
                                for i in reversed(range(c["depth"])))
        self.head = nn.Conv2d(widths[0], MAP_CHANNELS, 1)
        with torch.no_grad():          # start at the hull itself: no offset, keep every pixel, no correction
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.head.bias[0] = -3.0
            self.head.bias[4] = 3.0

    def forward(self, x: torch.Tensor, views: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """x: (B, V, C, R, R); ``views`` (B, V) long: which of the 14 views each is (all 14
        in order when None; training shows a random subset of them per shape)."""
        b, v, ch, h, w = x.shape
        if views is None:
            views = torch.arange(v, device=x.device).expand(b, v)
        code = self.embedding[views].view(b, v, -1, 1, 1).expand(b, v, -1, h, w)
        y = self.stem(torch.cat([x, code.to(x.dtype)], dim=2).view(b * v, -1, h, w))
        skips = [y]
        for block in self.down:
            skips.append(block(skips[-1]))
        y = skips.pop()
        shared = y.view(b, v, *y.shape[1:]).mean(dim=1, keepdim=True).expand(b, v, *y.shape[1:])
        y = self.mix(torch.cat([y, shared.reshape(y.shape)], dim=1))
        for block in self.up:
            skip = skips.pop()
            y = block(torch.cat([F.interpolate(y, size=skip.shape[-2:], mode="nearest"), skip], dim=1))
        out = self.head(y).float().view(b, v, MAP_CHANNELS, h, w)
        hull_depth, hull_normal, hull_mask = x[:, :, 0].float(), x[:, :, 1:4].float(), x[:, :, 4].float()
        offset = OFFSET_SCALE * F.softplus(out[:, :, 0]) - OFFSET_SLACK
        normal = F.normalize(hull_normal + out[:, :, 1:4], dim=2, eps=1e-6)
        mask_logit = torch.where(hull_mask > 0.5, out[:, :, 4], torch.full_like(out[:, :, 4], -20.0))
        return {"depth": hull_depth + offset, "normal": normal, "mask_logit": mask_logit, "offset": offset,
                "normal_correction": normal - hull_normal}

    @staticmethod
    def losses(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
               hull_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """L1 depth and L2 normals where both the hull and the truth show the object, and
        the mask's balanced cross-entropy inside the hull (outside it nothing is predicted)."""
        fg = target["mask"].float()
        hull = (hull_mask > 0.5).float()
        both = fg * hull
        count = both.sum().clamp_min(1.0)
        depth = ((pred["depth"] - target["depth"]).abs() * both).sum() / count
        normal = ((pred["normal"] - target["normal"]).pow(2).sum(dim=2) * both).sum() / count
        return {"depth": REFINE_DEPTH_WEIGHT * depth, "normal": normal,
                "mask": balanced_bce(pred["mask_logit"], fg, hull)}


# --- Design 2: a field around the round prior ----------------------------------------------------

FIELD_CONFIG: dict[str, Any] = {
    "design": "field",
    "resolution": 32,     # COARSE: nodes per axis of the grid over the canvas cube (backends.learned_field)
    "channels": 13,       # learned_field.CHANNELS
    "width": 16,          # channels at full resolution, doubling per level up to 4x
    "depth": 3,           # levels below full resolution (32 -> 4 nodes per axis)
}
ROUNDNESS_START = 2.0     # the roundness head starts at sigmoid(2) = 0.88: close to the round prior
CARVE_START = -4.0        # ... and the carving head at softplus(-4) = 0.018 of CARVE_SCALE: almost none
CARVE_WEIGHT = 0.02       # L1 on carving (world units), so the network carves only where the truth is empty


def _norm3(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class _Block3(nn.Module):
    """A 3x3x3 conv (stride 1 or 2), then one with a residual connection."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Conv3d(cin, cout, 3, stride, 1), _norm3(cout), nn.LeakyReLU(0.2, inplace=True))
        self.second = nn.Sequential(nn.Conv3d(cout, cout, 3, 1, 1), _norm3(cout), nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        return x + self.second(x)


def _complete_field_config(config: dict[str, Any]) -> dict[str, Any]:
    full = {**FIELD_CONFIG, **config}
    unknown = set(full) - set(FIELD_CONFIG)
    if unknown:
        raise ValueError(f"unknown network settings: {', '.join(sorted(unknown))}")
    res, depth = int(full["resolution"]), int(full["depth"])
    if depth < 1 or res % 2**depth or res // 2**depth < 2:
        raise ValueError(f"resolution {res} cannot be halved {depth} times down to at least 2 nodes")
    return full


class FieldNet(nn.Module):
    """Design 2: a small 3D U-Net on a coarse grid around the sketch's round prior.

    Input (B, C, n, n, n) from ``learned_field.network_inputs``. Outputs per node the
    roundness ``t`` in [0, 1] and the carving ``c`` >= 0 (world units) that
    ``learned_field.solid`` turns into the solid's field. At the bottleneck every node also
    sees the mean of all nodes' features, so local choices know the whole shape. It starts
    at the round prior (t near 1, no carving)."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = _complete_field_config(config or {})
        c = self.config
        widths = [c["width"] * min(2**i, 4) for i in range(c["depth"] + 1)]
        self.stem = _Block3(c["channels"], widths[0], 1)
        self.down = nn.ModuleList(_Block3(widths[i], widths[i + 1], 2) for i in range(c["depth"]))
        self.mix = nn.Sequential(nn.Conv3d(2 * widths[-1], widths[-1], 1), _norm3(widths[-1]),
                                 nn.LeakyReLU(0.2, inplace=True))
        self.up = nn.ModuleList(nn.Sequential(nn.Conv3d(widths[i + 1] + widths[i], widths[i], 3, 1, 1),
                                              _norm3(widths[i]), nn.LeakyReLU(0.2, inplace=True))
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
        from model_server.reconstruct.backends.learned_field import CARVE_SCALE

        return {"t": torch.sigmoid(out[:, 0]), "c": CARVE_SCALE * F.softplus(out[:, 1])}

    @staticmethod
    def solid(pred: dict[str, torch.Tensor], grids: torch.Tensor) -> torch.Tensor:
        """The solid's field (B, N, N, N) on the training grid: the answers read trilinearly
        between the coarse nodes and applied to the grids' hull, round prior and thickness fade."""
        from model_server.reconstruct.backends.learned_field import solid

        size = grids.shape[-3:]
        t, c = (F.interpolate(pred[k][:, None], size=size, mode="trilinear", align_corners=True)[:, 0]
                for k in ("t", "c"))
        return solid(grids[:, 0], grids[:, 1], t, c, grids[:, 2])

    @staticmethod
    def losses(pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Cross-entropy of the solid's soft occupancy against the truth's, over the nodes
        in or near the hull (outside it nothing is predicted), balanced between inside and
        outside nodes; and the L1 carving penalty."""
        from model_server.reconstruct.backends.learned_field import SURFACE_WIDTH

        grids = batch["grids"].float()
        f = FieldNet.solid(pred, grids)
        near = grids[:, 0] < 2.0 * SURFACE_WIDTH
        occupancy = balanced_bce(-f / SURFACE_WIDTH, batch["occupancy"].float(), near)
        return {"occupancy": occupancy, "carving": CARVE_WEIGHT * pred["c"].mean() / 0.01}


def _bare(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def run_model(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network of any design on a training batch."""
    if isinstance(_bare(model), FieldNet):
        return model(batch["input"])
    if isinstance(model, RefineNet) or isinstance(getattr(model, "module", None), RefineNet):
        return model(batch["input"], batch.get("views"))
    return model(batch["input"])


def losses(model: nn.Module, pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The training terms of any design (see :func:`terms_of`)."""
    if isinstance(model, FieldNet):
        return FieldNet.losses(pred, batch)
    if isinstance(model, RefineNet):
        return RefineNet.losses(pred, batch, batch["input"][:, :, 4])
    return map_losses(pred, batch)


def terms_of(config: dict[str, Any]) -> tuple[str, ...]:
    """The names of a design's training terms, in their log order."""
    return ("occupancy", "carving") if config.get("design") == "field" else ("depth", "normal", "mask")


def build_model(config: dict[str, Any] | None = None) -> nn.Module:
    """A freshly initialised network of ``config``'s design (defaults filled in):
    :class:`FieldNet` for "field", :class:`RefineNet` for "refine", else :class:`MultiViewNet`."""
    if (config or {}).get("design") == "field":
        return FieldNet(config)
    if (config or {}).get("design", "multiview") == "refine":
        return RefineNet(config)
    return MultiViewNet(config)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

"""The mask is really learned: the multi-view network overfits a handful of shapes' masks.

The loss once averaged the mask's cross-entropy over every pixel while depth and normals
were averaged over the object's pixels only; objects cover about a tenth of a view, so
the mask's gradient was ~10x too weak and masks stayed near IoU 0 while the total loss
fell. A test of the loss's value cannot see that; overfitting can."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_server.learning.data import shapes
from model_server.learning.data.format import decode
from model_server.learning.data.generate import make_sample
from model_server.learning.networks import build_model, config_for, losses, network_input

RES = 64
SHAPES = 8
STEPS = 900           # IoU passes 0.9 near step 750 on these shapes


def _batch() -> dict[str, torch.Tensor]:
    families = shapes.FAMILIES
    samples = []
    for i in range(SHAPES):
        vertices, faces = shapes.make_shape(families[i % len(families)], np.random.default_rng(i), grid=48)
        samples.append(decode(make_sample(vertices, faces, np.random.default_rng(100 + i), RES)))
    ink = torch.from_numpy(np.stack([s["sketch"][0] for s in samples]))
    return {"input": network_input(ink, torch.ones(SHAPES, dtype=torch.bool), 3),
            "depth": torch.from_numpy(np.stack([s["depth"] for s in samples])),
            "normal": torch.from_numpy(np.stack([s["normal"] for s in samples])).permute(0, 1, 4, 2, 3).contiguous(),
            "mask": torch.from_numpy(np.stack([s["mask"] for s in samples]).astype(np.float32))}


@pytest.mark.slow
def test_the_network_overfits_eight_shapes_masks() -> None:
    torch.manual_seed(0)
    batch = _batch()
    net = build_model(config_for(RES, width=16, view_width=8))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(STEPS):
        terms = losses(net, net(batch["input"]), batch)
        opt.zero_grad()
        sum(terms.values()).backward()
        opt.step()
    with torch.no_grad():
        predicted = net.eval()(batch["input"])["mask_logit"] > 0
    truth = batch["mask"] > 0.5
    iou = (predicted & truth).sum().item() / (predicted | truth).sum().item()
    assert iou >= 0.9, f"mask IoU {iou:.3f} after {STEPS} steps on {SHAPES} shapes"

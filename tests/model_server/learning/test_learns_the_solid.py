"""The solid is really learned: the network overfits a handful of real sketches' solids.

A test of the loss's value cannot tell a network that learns from one that only moves its
loss (the first design's masks once stayed near IoU 0 while its total loss fell). This one
trains FieldNet on four procedural shapes' own inputs and checks that its solid matches
their truth better than the round prior it starts from, and than the hull."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_server.learning.data import shapes
from model_server.learning.data.format import decode
from model_server.learning.data.generate import make_sample
from model_server.learning.networks import build_model, losses, solid_on_grid

SHAPES = 4
STEPS = 150


def _batch() -> dict[str, torch.Tensor]:
    inputs, grids, occupancy = [], [], []
    for i, family in enumerate(("chair", "table", "mug", "lathe")[:SHAPES]):
        vertices, faces = shapes.make_shape(family, np.random.default_rng(i), grid=48)
        sample = decode(make_sample(vertices, faces, np.random.default_rng(100 + i), 128))
        inputs.append(sample["field_input"][0])
        grids.append(sample["field_grids"][0])
        size = sample["field_grids"].shape[-1]
        occupancy.append(np.unpackbits(sample["occupancy"], count=size ** 3).reshape(size, size, size))
    as_tensor = lambda a: torch.from_numpy(np.stack(a).astype(np.float32))  # noqa: E731
    return {"input": as_tensor(inputs), "grids": as_tensor(grids), "occupancy": as_tensor(occupancy)}


def _iou(solid: torch.Tensor, truth: torch.Tensor, where: torch.Tensor) -> float:
    a, b = solid & where, truth & where
    return (a & b).sum().item() / max((a | b).sum().item(), 1)


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_the_network_overfits_four_shapes_solids() -> None:
    torch.manual_seed(0)
    batch = _batch()
    net = build_model({"width": 8})
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(STEPS):
        terms = losses(net(batch["input"]), batch)
        opt.zero_grad()
        sum(terms.values()).backward()
        opt.step()
    with torch.no_grad():
        solid = solid_on_grid(net.eval()(batch["input"]), batch["grids"]) < 0
    truth, hull, prior = batch["occupancy"] > 0.5, batch["grids"][:, 0] < 0, batch["grids"][:, 1] < 0
    near = batch["grids"][:, 0] < 0.05
    learned = _iou(solid, truth, near)
    assert learned > _iou(prior, truth, near) + 0.03 and learned > _iou(hull, truth, near) + 0.03, \
        (learned, _iou(prior, truth, near), _iou(hull, truth, near))

"""FieldNet, the learned backend's network: its outputs, its start at the round prior, its
losses, and its size."""

from __future__ import annotations

import pytest
import torch

from model_server.learning.networks import TERMS, FieldNet, build_model, losses, parameter_count, solid_on_grid
from model_server.reconstruct.backends import learned_field as lf

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, FINE = lf.COARSE, 16


def batch(b: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs; a box hull at the fine grid with a ball-shaped prior inside it, and a
    truth that is the prior itself."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.linspace(-1, 1, FINE)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    hull = torch.stack([x.abs(), y.abs(), z.abs()]).amax(0) - 0.6
    prior = torch.maximum(hull, (x * x + y * y + z * z).sqrt() - 0.6)
    grids = torch.stack([hull, prior, torch.ones_like(hull)])
    return {"input": torch.rand(b, lf.CHANNELS, N, N, N, generator=g), "grids": grids.expand(b, 3, -1, -1, -1),
            "occupancy": (prior < 0).float().expand(b, -1, -1, -1)}


def test_outputs_are_a_roundness_and_a_carving_per_node():
    net = FieldNet().eval()
    with torch.no_grad():
        out = net(batch()["input"])
    assert set(out) == {"t", "c"} and out["t"].shape == out["c"].shape == (2, N, N, N)
    assert out["t"].min() >= 0 and out["t"].max() <= 1 and out["c"].min() >= 0


def test_a_new_network_starts_near_the_round_prior():
    net = FieldNet().eval()
    with torch.no_grad():
        out = net(batch()["input"])
    assert 0.8 < float(out["t"].mean()) < 0.95 and float(out["c"].max()) < 0.02 * lf.CARVE_SCALE * 10


def test_the_solid_at_full_roundness_and_no_carving_is_the_prior():
    b = batch()
    answer = {"t": torch.ones(2, N, N, N), "c": torch.zeros(2, N, N, N)}
    assert torch.allclose(solid_on_grid(answer, b["grids"]), b["grids"][:, 1])
    answer["t"] = torch.zeros(2, N, N, N)
    assert torch.allclose(solid_on_grid(answer, b["grids"]), b["grids"][:, 0])


def test_the_loss_prefers_the_true_roundness_and_penalises_carving_and_boxiness():
    b = batch()
    terms = {}
    for name, t, c in (("prior", 1.0, 0.0), ("hull", 0.0, 0.0), ("carved", 1.0, 0.02)):
        answer = {"t": torch.full((2, N, N, N), t), "c": torch.full((2, N, N, N), c)}
        terms[name] = losses(answer, b)
    assert tuple(terms["prior"]) == TERMS == ("occupancy", "carving", "roundness")
    assert terms["prior"]["occupancy"] < terms["hull"]["occupancy"]
    assert terms["carved"]["carving"] > terms["prior"]["carving"] == 0
    assert terms["hull"]["roundness"] > terms["prior"]["roundness"] == 0


def test_gradients_reach_every_parameter():
    net = FieldNet()
    terms = losses(net(batch()["input"]), batch())
    sum(terms.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_inference_is_deterministic_and_the_design_builds_by_name():
    torch.manual_seed(3)
    net = build_model().eval()
    assert isinstance(net, FieldNet)
    x = batch()["input"]
    with torch.no_grad():
        assert torch.equal(net(x)["t"], net(x)["t"])
    with pytest.raises(ValueError, match="unknown network settings"):
        build_model({"colour": 1})
    with pytest.raises(ValueError, match="refine network is not this version's"):
        build_model({"design": "refine"})


def test_the_default_network_is_small_enough_to_ship():
    assert parameter_count(FieldNet()) * 2 < 30 * 2**20     # fp16 bytes under the 30 MB limit

"""One training step at toy size: the loss terms, validation and the state round trip."""

from __future__ import annotations

import pytest
import torch

from model_server.learning.networks import CHANNELS, COARSE, TERMS, complete_config
from model_server.learning.processes import Processes
from model_server.learning.trainer import Trainer

TOY = complete_config({"width": 4})
FINE = 16

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Two random inputs over a box hull whose round prior is a ball, and a truth that is the
    box: the network must learn to keep it boxy."""
    torch.manual_seed(seed)
    axis = torch.linspace(-1, 1, FINE)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    hull = torch.stack([x.abs(), y.abs(), z.abs()]).amax(0) - 0.6
    radius = (x * x + y * y + z * z).sqrt()
    grids = torch.stack([hull, torch.maximum(hull, radius - 0.6), torch.ones_like(hull)])
    return {"input": torch.rand(2, CHANNELS, COARSE, COARSE, COARSE), "grids": grids.expand(2, -1, -1, -1, -1),
            "occupancy": (hull < 0).float().expand(2, -1, -1, -1)}


def trainer(lr: float = 3e-2) -> Trainer:
    torch.manual_seed(0)
    return Trainer(TOY, torch.device("cpu"), Processes(), lr=lr, amp=True)


def test_steps_lower_the_loss_and_report_every_term() -> None:
    t = trainer()
    assert not t.amp, "bf16 autocast is for CUDA only"
    batch = toy_batch()
    first = t.step(batch)
    assert first.shape == (1 + len(TERMS),) and torch.isfinite(first).all()
    assert first[0] == pytest.approx(first[1:].sum().item(), rel=1e-5)
    for _ in range(20):
        last = t.step(batch)
    assert last[0] < 0.8 * first[0]


def test_validation_averages_the_terms_per_sample() -> None:
    t = trainer()
    a, b = toy_batch(0), toy_batch(1)
    one, two = t.validate([a]), t.validate([b])
    both = t.validate([a, b])
    assert one[0] == pytest.approx(sum(one[1:]))
    assert both == pytest.approx([(x + y) / 2 for x, y in zip(one, two)])


def test_state_round_trip_restores_weights_and_optimiser_and_takes_the_new_lr() -> None:
    t = trainer()
    t.step(toy_batch())
    state = t.state_dict()
    assert all(v.device.type == "cpu" for v in state["model"].values())
    other = trainer(lr=1.0)
    other.load_state_dict(state, lr=5e-4)
    x = toy_batch(1)
    for name, value in t.predict(x).items():
        assert torch.equal(other.predict(x)[name], value)
    assert [g["lr"] for g in other.opt.param_groups] == [5e-4]
    assert other.opt.state_dict()["state"].keys() == t.opt.state_dict()["state"].keys()

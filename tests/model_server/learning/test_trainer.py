"""One training step at toy size: the loss terms, the adversarial pair, validation and the state round trip."""

from __future__ import annotations

import pytest
import torch

from model_server.learning.networks import config_for, network_input
from model_server.learning.processes import Processes
from model_server.learning.trainer import Trainer

TOY = config_for(32, width=8, view_width=2)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Two sketches and ground truth: a centred square on every view at depth 0.25, facing the camera."""
    torch.manual_seed(seed)
    mask = torch.zeros(2, 14, 32, 32)
    mask[..., 8:24, 8:24] = 1.0
    normal = torch.zeros(2, 14, 3, 32, 32)
    normal[:, :, 2] = mask
    return {"input": network_input(torch.rand(2, 3, 32, 32), torch.tensor([True, False]), 3),
            "depth": 0.25 * mask, "normal": normal, "mask": mask}


def trainer(adversarial: float = 0.0, lr: float = 2e-3) -> Trainer:
    torch.manual_seed(0)
    return Trainer(TOY, torch.device("cpu"), Processes(), lr=lr, adversarial=adversarial, amp=True)


def test_steps_lower_the_loss_and_report_every_term() -> None:
    t = trainer(adversarial=0.01)
    assert not t.amp, "bf16 autocast is for CUDA only"
    batch = toy_batch()
    first = t.step(batch)
    assert first.shape == (6,) and torch.isfinite(first).all()
    loss, depth, normal, mask, adv_g, adv_d = first.tolist()
    assert loss == pytest.approx(depth + normal + mask + 0.01 * adv_g, rel=1e-5) and adv_d > 0
    for _ in range(15):
        last = t.step(batch)
    assert last[0] < 0.8 * first[0]
    no_gan = trainer().step(batch)
    assert no_gan[4] == 0 and no_gan[5] == 0


def test_validation_averages_the_map_terms_per_sample() -> None:
    t = trainer()
    a, b = toy_batch(0), toy_batch(1)
    one, two = t.validate([a]), t.validate([b])
    both = t.validate([a, b])
    assert one[0] == pytest.approx(sum(one[1:]))
    assert both == pytest.approx([(x + y) / 2 for x, y in zip(one, two)])


def test_state_round_trip_restores_weights_and_optimisers_and_takes_the_new_lr() -> None:
    t = trainer(adversarial=0.01)
    t.step(toy_batch())
    state = t.state_dict()
    assert all(v.device.type == "cpu" for v in state["model"].values())
    other = trainer(adversarial=0.01, lr=1.0)
    other.load_state_dict(state, lr=5e-4)
    x = toy_batch(1)
    for name, value in t.predict(x).items():
        assert torch.equal(other.predict(x)[name], value)
    assert all(torch.equal(p, q) for p, q in zip(t.disc.parameters(), other.disc.parameters()))
    assert [g["lr"] for opt in (other.opt, other.disc_opt) for g in opt.param_groups] == [5e-4, 5e-4]
    assert other.opt.state_dict()["state"].keys() == t.opt.state_dict()["state"].keys()


def test_adam_uses_standard_betas_unless_the_adversarial_term_is_on() -> None:
    assert trainer().opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert trainer(adversarial=0.01).opt.param_groups[0]["betas"] == (0.5, 0.999)

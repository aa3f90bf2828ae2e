"""The multi-view network, its discriminator and losses: shapes, ranges, the top-view flag, the loss terms."""

from __future__ import annotations

import pytest
import torch

from model_server.learning.networks import (DEFAULT_CONFIG, PatchDiscriminator, build_model, complete_config, config_for,
                                   gan_loss, input_channels, map_losses, network_input, parameter_count,
                                   predicted_maps, target_maps)

TOY = config_for(32, width=8, view_width=2)


def random_target(batch: int = 2, res: int = 32) -> dict[str, torch.Tensor]:
    mask = (torch.rand(batch, 14, res, res) > 0.5).float()
    normal = torch.nn.functional.normalize(torch.randn(batch, 14, 3, res, res), dim=2) * mask.unsqueeze(2)
    return {"depth": torch.randn(batch, 14, res, res) * mask, "normal": normal, "mask": mask}


@pytest.mark.parametrize("in_views", [2, 3])
def test_forward_gives_every_views_maps_with_unit_normals(in_views: int) -> None:
    torch.manual_seed(0)
    net = build_model({**TOY, "in_views": in_views})
    x = network_input(torch.rand(2, 3, 32, 32), torch.tensor([True, False]), in_views)
    assert x.shape == (2, input_channels(in_views), 32, 32)
    out = net(x)
    assert out["depth"].shape == (2, 14, 32, 32)
    assert out["normal"].shape == (2, 14, 3, 32, 32)
    assert out["mask_logit"].shape == (2, 14, 32, 32)
    for value in out.values():
        assert value.dtype == torch.float32 and torch.isfinite(value).all()
    torch.testing.assert_close(out["normal"].norm(dim=2), torch.ones(2, 14, 32, 32), atol=1e-4, rtol=0)


def test_views_have_their_own_decoders() -> None:
    """A gradient step on the decoders (bottleneck, up blocks, head) against one view's loss
    changes that view's maps and no other's: no decoder weight serves two views. With shared
    or cross-view mixing decoders, the step would move every view."""
    torch.manual_seed(0)
    net = build_model(TOY)
    x = network_input(torch.rand(2, 3, 32, 32), torch.tensor([True, False]), 3)
    before = net(x)
    view = 3
    decoders = [p for part in (net.bottleneck, net.up, net.head) for p in part.parameters()]
    (before["depth"][:, view].sum() + before["normal"][:, view].sum() + before["mask_logit"][:, view].sum()).backward()
    with torch.no_grad():
        for p in decoders:
            p -= 0.5 * p.grad
        after = net(x)
    others = [v for v in range(TOY["num_views"]) if v != view]
    for name in ("depth", "normal", "mask_logit"):
        assert (after[name][:, view] - before[name][:, view]).abs().max() > 1e-2, name
        torch.testing.assert_close(after[name][:, others], before[name][:, others], atol=1e-6, rtol=0)


def test_a_missing_top_is_a_blank_image_with_its_flag_off() -> None:
    sketch = torch.ones(2, 3, 16, 16)
    x = network_input(sketch, torch.tensor([True, False]), 3)
    assert torch.equal(x[0, 2], torch.ones(16, 16)) and torch.equal(x[0, 3], torch.ones(16, 16))
    assert torch.equal(x[1, 2], torch.zeros(16, 16)) and torch.equal(x[1, 3], torch.zeros(16, 16))
    assert torch.equal(x[:, :2], sketch[:, :2])
    two_views = network_input(torch.ones(1, 2, 16, 16), None, 3)
    assert two_views.shape == (1, 4, 16, 16) and not two_views[:, 2:].any()
    assert torch.equal(network_input(sketch, None, 2), sketch[:, :2])


def test_config_is_checked_and_fitted_to_the_resolution() -> None:
    with pytest.raises(ValueError, match="halved"):
        complete_config({"resolution": 48, "depth": 6})
    with pytest.raises(ValueError, match="unknown"):
        complete_config({"colour": "blue"})
    with pytest.raises(ValueError, match="in_views"):
        complete_config({"in_views": 1})
    assert config_for(32)["depth"] == 3
    assert config_for(256) == DEFAULT_CONFIG


def test_default_network_fits_the_shipping_budget_and_runs_at_256() -> None:
    net = build_model()
    assert parameter_count(net) * 2 <= 30e6, "the fp16 weights must stay within about 30 MB"
    with torch.inference_mode():
        out = net(network_input(torch.rand(1, 3, 256, 256), torch.tensor([False]), 3))
    assert out["depth"].shape == (1, 14, 256, 256)


def test_losses_vanish_for_the_truth_and_count_only_the_foreground() -> None:
    target = random_target()
    perfect = {"depth": target["depth"].clone(), "normal": target["normal"].clone(),
               "mask_logit": (target["mask"] - 0.5) * 40.0}
    terms = map_losses(perfect, target)
    assert terms["depth"] == 0 and terms["normal"] == 0 and terms["mask"] < 1e-6

    background = 1.0 - target["mask"]
    perfect["depth"] = target["depth"] + 5.0 * background
    perfect["normal"] = target["normal"] + background.unsqueeze(2)
    assert map_losses(perfect, target)["depth"] == 0 and map_losses(perfect, target)["normal"] == 0

    perfect["depth"] = target["depth"] + 0.1
    torch.testing.assert_close(map_losses(perfect, target)["depth"], torch.tensor(0.1))
    flipped = {**perfect, "normal": -target["normal"]}
    torch.testing.assert_close(map_losses(flipped, target)["normal"], torch.tensor(4.0))


def test_discriminator_scores_patches_of_sketch_and_maps() -> None:
    torch.manual_seed(0)
    x = network_input(torch.rand(2, 3, 32, 32), torch.tensor([True, True]), 3)
    disc = PatchDiscriminator(TOY)
    fake = disc(x, predicted_maps(build_model(TOY)(x)))
    real = disc(x, target_maps(random_target()))
    assert fake.shape == real.shape == (2, 1, 4, 4)  # one logit per 8x8 block
    logits = torch.full((2, 1, 4, 4), 20.0)
    assert gan_loss(logits, real=True) < 1e-6 and gan_loss(logits, real=False) > 10

"""The hull-refining network (design 1): shapes, where its answers may go, determinism,
and that it learns on real training inputs."""

from __future__ import annotations

import torch

from model_server.learning.networks import REFINE_CONFIG, RefineNet, build_model, losses, parameter_count

TOY = {"design": "refine", "resolution": 32, "width": 8, "depth": 2}


def toy_input(batch: int = 2, views: int = 14, res: int = 32) -> torch.Tensor:
    torch.manual_seed(1)
    x = torch.rand(batch, views, 9, res, res)
    x[:, :, 4] = (x[:, :, 4] > 0.3).float()
    x[:, :, 0] *= x[:, :, 4]
    x[:, :, 1:4] = torch.nn.functional.normalize(x[:, :, 1:4], dim=2) * x[:, :, 4:5]
    return x


def test_outputs_have_the_map_layout_and_stay_in_the_hull():
    net = build_model(TOY)
    assert isinstance(net, RefineNet)
    x = toy_input()
    out = net(x)
    for name in ("depth", "mask_logit", "offset"):
        assert out[name].shape == (2, 14, 32, 32)
    assert out["normal"].shape == (2, 14, 3, 32, 32)
    torch.testing.assert_close(out["normal"].norm(dim=2), torch.ones(2, 14, 32, 32), atol=1e-4, rtol=0)
    outside = x[:, :, 4] < 0.5
    assert (out["mask_logit"][outside] < -10).all()
    assert (out["offset"] >= -0.02 - 1e-6).all()
    torch.testing.assert_close(out["depth"], x[:, :, 0] + out["offset"])


def test_a_new_network_starts_at_the_hull():
    out = build_model(TOY)(toy_input())
    inside = toy_input()[:, :, 4] > 0.5
    assert out["offset"].abs().max() < 0.03
    assert (torch.sigmoid(out["mask_logit"][inside]) > 0.9).all()


def test_inference_is_deterministic_and_views_are_told_apart():
    net = build_model(TOY).eval()
    with torch.no_grad():
        net.embedding.normal_()
        x = toy_input(1)
        a, b = net(x), net(x)
        torch.testing.assert_close(a["depth"], b["depth"], atol=0, rtol=0)
        same = x[:, :1].expand(1, 14, -1, -1, -1).contiguous()    # one view's input shown as all 14
        out = net(same)["depth"]
    assert (out[0, 0] - out[0, 5]).abs().max() > 0, "the view code must make views differ"


def test_a_subset_of_views_is_the_same_network_on_those_views():
    net = build_model(TOY).eval()
    x = toy_input(1)
    views = torch.tensor([[0, 3, 7]])
    with torch.no_grad():
        out = net(x[:, [0, 3, 7]], views)
    assert out["depth"].shape == (1, 3, 32, 32)


def test_losses_count_only_the_hull_and_vanish_for_the_truth():
    x = toy_input()
    hull = x[:, :, 4]
    truth = {"depth": x[:, :, 0] + 0.1 * hull, "normal": x[:, :, 1:4], "mask": hull.clone(), "input": x}
    truth["mask"][:, :, :4] = 0.0         # the truth carves some of the hull away
    perfect = {"depth": truth["depth"], "normal": truth["normal"],
               "mask_logit": torch.where(truth["mask"] > 0.5, 30.0, -30.0)}
    terms = RefineNet.losses(perfect, truth, hull)
    assert terms["depth"] == 0 and terms["normal"] == 0 and terms["mask"] < 1e-6
    wrong_outside = dict(perfect, mask_logit=torch.where(hull > 0.5, perfect["mask_logit"], 30.0))
    assert RefineNet.losses(wrong_outside, truth, hull)["mask"] < 1e-6, "outside the hull nothing is judged"
    net = build_model(TOY)
    assert set(losses(net, net(x), truth)) == {"depth", "normal", "mask"}


def test_the_default_network_is_small_enough_to_ship():
    net = build_model(REFINE_CONFIG)
    assert parameter_count(net) * 2 <= 30e6
    with torch.inference_mode():
        out = net(torch.zeros(1, 14, 9, 128, 128))
    assert out["depth"].shape == (1, 14, 128, 128)

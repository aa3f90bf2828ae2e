"""Checkpoints: weights-only loading, atomic writes, RNG round trips and the fp16 export."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from model_server.learning import checkpoint as ckpt
from model_server.learning.networks import CHANNELS, COARSE, build_model, complete_config

TOY = complete_config({"width": 4})


def toy_input(count: int) -> torch.Tensor:
    return torch.rand(count, CHANNELS, COARSE, COARSE, COARSE)


def training_state() -> dict:
    """A checkpoint like the trainer's: a network after one Adam step, with RNG and history."""
    torch.manual_seed(0)
    net = build_model(TOY)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    out = net(toy_input(2))
    (out["t"].mean() + out["c"].mean()).backward()
    opt.step()
    return {"format": ckpt.FORMAT, "kind": "training", "config": net.config, "model": net.state_dict(),
            "optimizer": opt.state_dict(), "step": 1, "epoch": 0, "rng": ckpt.rng_state(),
            "history": {"columns": ["step", "loss"], "rows": torch.tensor([[1.0, 2.5]], dtype=torch.float64)},
            "args": {"data": "/somewhere", "lr": 1e-3, "amp": False, "log_dir": None}}


def test_checkpoint_loads_with_the_weights_only_unpickler(tmp_path: Path) -> None:
    state = training_state()
    path = tmp_path / "run.pt"
    ckpt.save_checkpoint(path, state)
    loaded = torch.load(path, weights_only=True)
    assert loaded["config"] == TOY and loaded["step"] == 1 and loaded["args"] == state["args"]
    assert all(torch.equal(loaded["model"][k], v) for k, v in state["model"].items())
    net = build_model(loaded["config"])
    net.load_state_dict(loaded["model"])
    opt = torch.optim.Adam(net.parameters())
    opt.load_state_dict(loaded["optimizer"])
    assert opt.param_groups[0]["betas"] == (0.5, 0.999)
    assert list(tmp_path.iterdir()) == [path]


class SaveInterrupted(Exception):
    """Stands for anything that stops a save half-way (a full disk, a kill)."""


class Unsaveable:
    """A value whose pickling fails part-way through torch.save."""

    def __reduce__(self):
        raise SaveInterrupted("stopped mid-save")


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    ckpt.save_checkpoint(path, training_state())
    with pytest.raises(SaveInterrupted):
        ckpt.save_checkpoint(path, {"format": ckpt.FORMAT, "config": TOY, "model": Unsaveable()})
    assert ckpt.load_checkpoint(path)["step"] == 1
    assert list(tmp_path.iterdir()) == [path]


def test_rng_states_survive_a_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's state
    ckpt.save_checkpoint(tmp_path / "rng.pt", {"format": ckpt.FORMAT, "config": TOY, "rng": ckpt.rng_state()})
    first = (torch.rand(4), np.random.standard_normal(4), [random.random() for _ in range(4)], random.gauss(0, 1))
    ckpt.set_rng_state(ckpt.load_checkpoint(tmp_path / "rng.pt")["rng"])
    second = (torch.rand(4), np.random.standard_normal(4), [random.random() for _ in range(4)], random.gauss(0, 1))
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    assert first[2:] == second[2:]


def test_other_files_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        ckpt.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a Sketch2Mesh checkpoint"):
        ckpt.load_checkpoint(tmp_path / "other.pt")


def test_fp16_export_is_small_and_predicts_like_the_original(tmp_path: Path) -> None:
    ckpt.save_checkpoint(tmp_path / "run.pt", training_state())
    ckpt.export_weights(tmp_path / "run.pt", tmp_path / "ship.pt")
    shipped = torch.load(tmp_path / "ship.pt", weights_only=True)
    assert shipped["kind"] == "inference" and shipped["config"] == TOY and "optimizer" not in shipped
    assert all(v.dtype == torch.float16 for v in shipped["model"].values() if v.is_floating_point())
    assert (tmp_path / "ship.pt").stat().st_size < 0.3 * (tmp_path / "run.pt").stat().st_size

    x = toy_input(1)
    with torch.inference_mode():
        full = ckpt.load_model(tmp_path / "run.pt")(x)
        half = ckpt.load_model(tmp_path / "ship.pt")(x)
    torch.testing.assert_close(half["t"], full["t"], atol=1e-2, rtol=0)
    torch.testing.assert_close(half["c"], full["c"], atol=1e-3, rtol=0)

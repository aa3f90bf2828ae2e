"""The ``train`` command at toy size on generated datasets: learning, logs, exact resume,
several folders, user errors, and a two-process torchrun."""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model_server.learning import checkpoint as ckpt
from model_server.learning import train
from model_server.learning.data.shapes import FAMILIES
from model_server.learning.logs import COLUMNS

TOY = ["--batch", "4", "--width", "4", "--workers", "0", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight real procedural shapes at 64², made by the dataset command (a few seconds)."""
    folder = tmp_path_factory.mktemp("data")
    subprocess.run([sys.executable, "-m", "model_server", "dataset", "--out", str(folder), "--count", "8",
                    "--resolution", "64", "--workers", "1"], check=True, capture_output=True)
    return folder


def run_train(*argv: str) -> None:
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    train.run(parser.parse_args([str(a) for a in argv]))


def read_csv(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.slow      # 10 s; the fast lane has test_trainer's falling loss and test_logs' files
def test_loss_falls_on_a_tiny_set_and_everything_is_logged(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.pt"
    run_train("--data", data, "--out", out, "--steps", 30, "--checkpoint-every", 15, "--lr", 1e-2,
              *TOY, "--width", 8)
    rows = read_csv(tmp_path / "run_logs" / "losses.csv")
    assert [r["step"] for r in rows] == list(range(1, 31))
    first, last = sum(r["loss"] for r in rows[:4]) / 4, sum(r["loss"] for r in rows[-4:]) / 4   # two epochs each
    assert last < 0.9 * first, (first, last)   # part of the loss is out of reach: truth outside the coarse hull
    assert [r["step"] for r in read_csv(tmp_path / "run_logs" / "val.csv")] == [15, 30]
    assert (tmp_path / "run_logs" / "loss_curves.png").stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "run_logs" / "previews").iterdir()) == \
        ["step_0000015.png", "step_0000030.png"]
    state = ckpt.load_checkpoint(out)
    assert state["step"] == 30 and state["config"]["width"] == 8
    assert state["history"]["rows"].shape == (30, len(COLUMNS))


@pytest.mark.slow      # 7 s; the fast lane has test_trainer's state round trip and test_loader's resume
def test_resume_reproduces_the_uninterrupted_run(data: Path, tmp_path: Path) -> None:
    """2N steps == N steps + resume + N steps, bitwise; a run resumed from an older
    checkpoint drops the log rows written after it."""
    common = ["--data", data, "--checkpoint-every", 5, *TOY]  # 2 steps per epoch
    run_train(*common, "--out", tmp_path / "full.pt", "--steps", 10)

    half, logs = tmp_path / "half.pt", tmp_path / "half_logs"
    run_train(*common, "--out", half, "--steps", 5)   # stops mid-epoch
    shutil.copy(half, tmp_path / "at5.pt")
    run_train(*common, "--out", half, "--resume", half, "--steps", 8)   # a run that is then lost...
    assert len(read_csv(logs / "losses.csv")) == 8
    run_train(*common, "--out", half, "--resume", tmp_path / "at5.pt", "--steps", 10)  # ...resumed from step 5

    full, resumed = ckpt.load_checkpoint(tmp_path / "full.pt"), ckpt.load_checkpoint(half)
    assert full["step"] == resumed["step"] == 10 and full["epoch"] == resumed["epoch"]
    assert full["model"].keys() == resumed["model"].keys()
    assert all(torch.equal(full["model"][k], resumed["model"][k]) for k in full["model"])
    losses = slice(2, 6)  # loss terms and learning rate; the step times differ
    assert torch.equal(full["history"]["rows"][:, losses], resumed["history"]["rows"][:, losses])
    assert [r["step"] for r in read_csv(logs / "losses.csv")] == list(range(1, 11))


def test_bad_arguments_are_user_errors(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no meta.json"):
        run_train("--data", tmp_path, "--out", tmp_path / "x.pt", *TOY)
    with pytest.raises(ValueError, match="--steps"):
        run_train("--data", data, "--out", tmp_path / "x.pt", "--steps", 0, *TOY)
    with pytest.raises(ValueError, match="does not exist"):
        run_train("--data", data, "--out", tmp_path / "x.pt", "--resume", tmp_path / "nope.pt", *TOY)
    run_train("--data", data, "--out", tmp_path / "x.pt", "--steps", 1, *TOY)
    ckpt.export_weights(tmp_path / "x.pt", tmp_path / "ship.pt")
    with pytest.raises(ValueError, match="inference"):
        run_train("--data", data, "--out", tmp_path / "y.pt", "--resume", tmp_path / "ship.pt", *TOY)
    with pytest.raises(ValueError, match="width"):
        run_train("--data", data, "--out", tmp_path / "y.pt", "--resume", tmp_path / "x.pt", *TOY, "--width", 16)
    with pytest.raises(ValueError, match="seed"):
        run_train("--data", data, "--out", tmp_path / "y.pt", "--resume", tmp_path / "x.pt", *TOY, "--seed", 1)
    old = ckpt.load_checkpoint(tmp_path / "x.pt")
    ckpt.save_checkpoint(tmp_path / "old.pt", {**old, "config": {"design": "refine", "width": 4}})
    with pytest.raises(ValueError, match="refine network"):
        run_train("--data", data, "--out", tmp_path / "y.pt", "--resume", tmp_path / "old.pt", *TOY)


def test_several_dataset_folders_are_mixed_and_held_out_families_stay_out(data: Path, tmp_path: Path) -> None:
    second = tmp_path / "second"
    shutil.copytree(data, second)
    out = tmp_path / "mixed.pt"
    run_train("--data", data, second, "--out", out, "--steps", 1, "--hold-out", "chair", *TOY)
    assert "chair" in ckpt.load_checkpoint(out)["args"]["hold_out"]
    assert ckpt.load_checkpoint(out)["args"]["data"] == [str(data), str(second)]
    with pytest.raises(ValueError, match="no shapes"):
        run_train("--data", data, "--out", out, "--hold-out", ",".join(FAMILIES), *TOY)


@pytest.mark.slow
def test_two_cpu_processes_train_with_torchrun(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "model_server", "train", "--data", str(data), "--out", str(out), "--steps", "3",
         "--checkpoint-every", "100", *TOY],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on 2 x cpu" in result.stderr
    state = ckpt.load_checkpoint(out)
    assert state["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.pt", "ddp_logs"]
    assert [r["step"] for r in read_csv(tmp_path / "ddp_logs" / "losses.csv")] == [1, 2, 3]
    assert [p.name for p in (tmp_path / "ddp_logs" / "previews").iterdir()] == ["step_0000003.png"]

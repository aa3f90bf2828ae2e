"""Rank 0's records: CSV files rewritten from the checkpoint's history, the loss curves and the preview sheet."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from model_server.learning.logs import COLUMNS, PREVIEW_TILE, VAL_COLUMNS, TrainingLog


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def step_row(step: int) -> list[float]:
    return [step, 0, 1.0 / step + 0.02, 1.0 / step, 0.01, 0.01, 2e-4, 0.5]


def test_csv_files_start_from_the_history_and_grow_by_row(tmp_path: Path) -> None:
    (tmp_path / "losses.csv").write_text("rows an interrupted run wrote after its checkpoint\n")
    log = TrainingLog(tmp_path, [step_row(1), step_row(2)], [[2, 0.62, 0.6, 0.01, 0.01]])
    log.log(step_row(4))
    log.log_val([4, 0.52, 0.5, 0.01, 0.01])
    log.close()
    losses = rows(tmp_path / "losses.csv")
    assert losses[0] == list(COLUMNS) == ["step", "epoch", "loss", "occupancy", "carving", "roundness", "lr",
                                                     "seconds"]
    assert [r[0] for r in losses[1:]] == ["1", "2", "4"] and losses[3] == ["4", "0", "0.27", "0.25", "0.01", "0.01", "0.0002", "0.5"]
    assert rows(tmp_path / "val.csv") == [list(VAL_COLUMNS), ["2", "0.62", "0.6", "0.01", "0.01"],
                                            ["4", "0.52", "0.5", "0.01", "0.01"]]
    assert len(log.history) == 3 and len(log.val_history) == 2


def test_curves_and_previews_are_drawn(tmp_path: Path) -> None:
    from PIL import Image

    log = TrainingLog(tmp_path, [step_row(s) for s in range(1, 120)], [[60, 0.51, 0.49, 0.01, 0.01]])
    log.plot()
    log.close()
    assert (tmp_path / "loss_curves.png").stat().st_size > 0
    fine, shapes = 16, 2
    axis = torch.linspace(-1, 1, fine)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    box = torch.stack([x.abs(), y.abs(), z.abs()]).amax(0) - 0.5
    batch = {"grids": torch.stack([box, box, torch.ones_like(box)]).expand(shapes, -1, -1, -1, -1),
             "occupancy": (box < 0).float().expand(shapes, -1, -1, -1)}
    pred = {"t": torch.ones(shapes, 8, 8, 8), "c": torch.zeros(shapes, 8, 8, 8)}
    path = log.preview(12, batch, pred)
    assert path == tmp_path / "previews" / "step_0000012.png"
    scale = PREVIEW_TILE // fine
    with Image.open(path) as image:     # per shape one row of hull, prior, prediction and truth, three tiles each
        assert image.size == (12 * (fine + 2) * scale, shapes * (fine + 2) * scale + 14)

"""Rank 0's records: CSV files rewritten from the checkpoint's history, the loss curves and the preview sheet."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from model_server.learning.logs import COLUMNS, PREVIEW_COLUMNS, PREVIEW_TILE, PREVIEW_VIEWS, VAL_COLUMNS, TrainingLog


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def step_row(step: int) -> list[float]:
    return [step, 0, 1.5 / step, 0.5, 0.5, 0.5 / step, 0.0, 0.0, 2e-4, 0.01]


def test_csv_files_start_from_the_history_and_grow_by_row(tmp_path: Path) -> None:
    (tmp_path / "losses.csv").write_text("rows an interrupted run wrote after its checkpoint\n")
    log = TrainingLog(tmp_path, [step_row(1), step_row(2)], [[2, 1.0, 0.4, 0.3, 0.3]], in_views=3)
    log.log(step_row(3))
    log.log_val([3, 0.9, 0.3, 0.3, 0.3])
    log.close()
    losses = rows(tmp_path / "losses.csv")
    assert losses[0] == list(COLUMNS) and [r[0] for r in losses[1:]] == ["1", "2", "3"]
    assert losses[3] == ["3", "0", "0.5", "0.5", "0.5", "0.166667", "0", "0", "0.0002", "0.01"]
    assert rows(tmp_path / "val.csv") == [list(VAL_COLUMNS), ["2", "1", "0.4", "0.3", "0.3"],
                                          ["3", "0.9", "0.3", "0.3", "0.3"]]
    assert len(log.history) == 3 and len(log.val_history) == 2


def test_curves_and_previews_are_drawn(tmp_path: Path) -> None:
    from PIL import Image

    log = TrainingLog(tmp_path, [step_row(s) for s in range(1, 120)], [[60, 1.0, 0.4, 0.3, 0.3]], in_views=2)
    log.plot()
    log.close()
    assert (tmp_path / "loss_curves.png").stat().st_size > 0
    res, shapes = 32, 2
    batch = {"input": torch.rand(shapes, 2, res, res), "depth": torch.zeros(shapes, 14, res, res),
             "normal": torch.zeros(shapes, 14, 3, res, res), "mask": torch.ones(shapes, 14, res, res)}
    pred = {"depth": torch.zeros(shapes, 14, res, res), "normal": torch.zeros(shapes, 14, 3, res, res),
            "mask_logit": torch.zeros(shapes, 14, res, res)}
    path = log.preview(12, batch, pred)
    assert path == tmp_path / "previews" / "step_0000012.png"
    scale = PREVIEW_TILE // res
    with Image.open(path) as image:
        assert image.size == (len(PREVIEW_COLUMNS) * (res + 2) * scale,
                              shapes * len(PREVIEW_VIEWS) * (res + 2) * scale + 14)

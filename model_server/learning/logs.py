"""Rank 0's training records: losses.csv, val.csv, loss_curves.png and previews/step_XXXXXXX.png.

The CSV files are rewritten from the checkpoint's history when a run starts, so a run
resumed from an older checkpoint drops the rows an interrupted run logged after it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from model_server.learning.networks import TERMS, solid_on_grid

COLUMNS = ("step", "epoch", "loss", *TERMS, "lr", "seconds")
VAL_COLUMNS = ("step", "loss", *TERMS)
PREVIEW_TILE = 128


class TrainingLog:
    """Rank 0's files: losses.csv (one row per step), val.csv, loss_curves.png, previews/."""

    def __init__(self, log_dir: Path, history: list[list[float]], val_history: list[list[float]]) -> None:
        self.dir = log_dir
        (self.dir / "previews").mkdir(parents=True, exist_ok=True)
        self.history, self.val_history = history, val_history
        # Rewritten from the checkpoint's history, dropping rows an interrupted run logged after it.
        _write_csv(self.dir / "val.csv", VAL_COLUMNS, val_history)
        _write_csv(self.dir / "losses.csv", COLUMNS, history)
        self._file = open(self.dir / "losses.csv", "a", newline="")
        self._csv = csv.writer(self._file)

    def log(self, row: list[float]) -> None:
        self.history.append(row)
        self._csv.writerow(_csv_row(COLUMNS, row))
        self._file.flush()

    def log_val(self, row: list[float]) -> None:
        self.val_history.append(row)
        _write_csv(self.dir / "val.csv", VAL_COLUMNS, self.val_history)

    def close(self) -> None:
        self._file.close()

    def plot(self) -> None:
        """loss_curves.png: each training term (smoothed) and validation over steps, log scale."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not self.history:
            return
        h = np.asarray(self.history)
        cols, val_cols = COLUMNS, VAL_COLUMNS
        names = ["loss", *TERMS]
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3), squeeze=False)
        window = max(1, len(h) // 50)
        v = np.asarray(self.val_history) if self.val_history else None
        for ax, name in zip(axes[0], names):
            y = h[:, cols.index(name)]
            ax.plot(h[:, 0], y, color="0.8", lw=0.6)
            if window > 1:
                smooth = np.convolve(y, np.ones(window) / window, mode="valid")
                ax.plot(h[window - 1:, 0], smooth, color="C0", lw=1.2, label="train")
            if v is not None and name in val_cols:
                ax.plot(v[:, 0], v[:, val_cols.index(name)], "o-", color="C1", ms=3, label="val")
            ax.set_title(name)
            ax.set_xlabel("step")
            if np.all(y > 0):
                ax.set_yscale("log")
        axes[0][0].legend(fontsize=7)
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.16, top=0.88, wspace=0.35)  # tight_layout is slow
        fig.savefig(self.dir / "loss_curves.png", dpi=90)
        plt.close(fig)

    def preview(self, step: int, batch: dict[str, torch.Tensor], pred: dict[str, torch.Tensor]) -> Path:
        """previews/step_XXXXXXX.png: per shape, the hull and the round prior the network
        starts from, its solid and the truth, each seen from the front and the side and cut
        at mid-height."""
        from PIL import Image, ImageDraw

        grids = batch["grids"].float()
        solid = (solid_on_grid(pred, grids) < 0).cpu().numpy()
        truth = batch["occupancy"].cpu().numpy() > 0.5
        rows = []
        for s in range(len(solid)):
            tiles = []
            for volume in (grids[s, 0].cpu().numpy() < 0, grids[s, 1].cpu().numpy() < 0, solid[s], truth[s]):
                tiles += _field_tiles(volume)
            rows.append(np.concatenate([np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=0.5) for t in tiles], 1))
        grid = np.concatenate(rows, 0)
        scale = max(1, PREVIEW_TILE // truth.shape[-1])
        grid = grid.repeat(scale, 0).repeat(scale, 1)
        header = 14
        image = Image.new("RGB", (grid.shape[1], grid.shape[0] + header), "white")
        image.paste(Image.fromarray((grid * 255).round().astype(np.uint8)), (0, header))
        draw = ImageDraw.Draw(image)
        block = grid.shape[1] // 4
        for c, title in enumerate(("hull", "round prior", "predicted", "truth")):
            draw.text((c * block + 3, 1), f"{title} (step {step})" if c == 2 else title, fill="black")
        path = self.dir / "previews" / f"step_{step:07d}.png"
        image.save(path)
        return path


def _field_tiles(solid: np.ndarray) -> list[np.ndarray]:
    """A solid (N, N, N) bool, indexed [x, y, z], seen from the front and the side (its
    extent along the view) and cut at mid-height: three grey tiles, dark inside."""
    front = solid.any(axis=1).T[::-1]          # rows: z down, cols: x
    side = solid.any(axis=0).T[::-1, ::-1]     # the side view looks along -x: y runs right to left
    cut = solid[:, :, solid.shape[2] // 2].T[::-1]
    return [np.repeat(1.0 - t.astype(np.float32)[..., None], 3, axis=2) for t in (front, side, cut)]


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[list[float]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(_csv_row(columns, r) for r in rows)


def _csv_row(columns: tuple[str, ...], row: list[float]) -> list[str]:
    return [str(int(v)) if name in ("step", "epoch") else f"{v:.6g}" for name, v in zip(columns, row)]

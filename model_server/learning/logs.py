"""Rank 0's training records: losses.csv, val.csv, loss_curves.png and previews/step_XXXXXXX.png.

The CSV files are rewritten from the checkpoint's history when a run starts, so a run
resumed from an older checkpoint drops the rows an interrupted run logged after it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from model_server.geometry.views import VIEWS
from model_server.learning.data.previews import depth_image, ink_image, normal_image
from model_server.learning.networks import INPUT_ORDER

MAP_TERMS = ("depth", "normal", "mask")     # the map designs' terms; the field design's are its own (networks.terms_of)
COLUMNS = ("step", "epoch", "loss", *MAP_TERMS, "adv_g", "adv_d", "lr", "seconds")
VAL_COLUMNS = ("step", "loss", *MAP_TERMS)


def columns(terms: tuple[str, ...] = MAP_TERMS) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The columns of losses.csv and val.csv for a design with these training terms."""
    return ("step", "epoch", "loss", *terms, "adv_g", "adv_d", "lr", "seconds"), ("step", "loss", *terms)
PREVIEW_VIEWS = (0, 1, 2)
PREVIEW_COLUMNS = ("sketch", "depth", "normal", "mask", "true depth", "true normal", "true mask")
PREVIEW_TILE = 128
DEPTH_SPAN = (-1.0, 1.0)    # depth drawn from light (near) to dark (far), the same for prediction and truth
DEPTH_COLORMAP = "viridis"


class TrainingLog:
    """Rank 0's files: losses.csv (one row per step), val.csv, loss_curves.png, previews/."""

    def __init__(self, log_dir: Path, history: list[list[float]], val_history: list[list[float]], in_views: int,
                 terms: tuple[str, ...] = MAP_TERMS) -> None:
        self.dir, self.in_views, self.terms = log_dir, in_views, tuple(terms)
        self.columns, self.val_columns = columns(self.terms)
        (self.dir / "previews").mkdir(parents=True, exist_ok=True)
        self.history, self.val_history = history, val_history
        # Rewritten from the checkpoint's history, dropping rows an interrupted run logged after it.
        _write_csv(self.dir / "val.csv", self.val_columns, val_history)
        _write_csv(self.dir / "losses.csv", self.columns, history)
        self._file = open(self.dir / "losses.csv", "a", newline="")
        self._csv = csv.writer(self._file)

    def log(self, row: list[float]) -> None:
        self.history.append(row)
        self._csv.writerow(_csv_row(self.columns, row))
        self._file.flush()

    def log_val(self, row: list[float]) -> None:
        self.val_history.append(row)
        _write_csv(self.dir / "val.csv", self.val_columns, self.val_history)

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
        cols, val_cols = self.columns, self.val_columns
        names = ["loss", *self.terms] + (["adv_g", "adv_d"] if np.any(h[:, cols.index("adv_d")]) else [])
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
        """previews/step_XXXXXXX.png: per shape, one row per view, sketch | predicted depth, normal,
        mask | true depth, normal, mask. Row k shows input sketch k (front, side, top) and output
        view PREVIEW_VIEWS[k]."""
        from PIL import Image, ImageDraw

        if "grids" in batch:
            return self._preview_field(step, batch, pred)
        numpy = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
        ink = numpy(batch["input"])
        truth = {k: numpy(batch[k]) for k in ("depth", "normal", "mask")}
        guess = {"depth": numpy(pred["depth"]), "normal": numpy(pred["normal"]),
                 "mask": numpy(torch.sigmoid(pred["mask_logit"]))}
        sketch_names = INPUT_ORDER[:2] if self.in_views == 2 else INPUT_ORDER
        scale = max(1, PREVIEW_TILE // ink.shape[-1])
        rows, labels = [], []
        for s in range(len(ink)):
            for k, v in enumerate(PREVIEW_VIEWS):
                if ink.ndim == 5:   # the refine design's inputs: show the ink lifted onto the hull in view v
                    sketch = ink_image(ink[s, v, 5:8].max(axis=0))
                else:
                    sketch = ink_image(ink[s, k]) if k < len(sketch_names) else np.ones_like(ink[s, 0])
                tiles = [np.repeat(sketch[..., None], 3, axis=2)]
                for maps in (guess, truth):
                    fg = maps["mask"][s, v] > 0.5
                    tiles += [depth_image(maps["depth"][s, v], fg, DEPTH_SPAN, DEPTH_COLORMAP, background=1.0),
                              normal_image(np.moveaxis(maps["normal"][s, v], 0, -1), fg, background=1.0),
                              np.repeat(1.0 - maps["mask"][s, v][..., None], 3, axis=2)]
                rows.append(np.concatenate([np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=0.5) for t in tiles], 1))
                labels.append(f"{s}: {sketch_names[k] if k < len(sketch_names) else '-'} | {VIEWS[v].name}")
        grid = np.concatenate(rows, 0).repeat(scale, 0).repeat(scale, 1)
        header = 14
        image = Image.new("RGB", (grid.shape[1], grid.shape[0] + header), "white")
        image.paste(Image.fromarray((grid * 255).round().astype(np.uint8)), (0, header))
        draw = ImageDraw.Draw(image)
        tile = grid.shape[1] // len(PREVIEW_COLUMNS)
        for c, title in enumerate(PREVIEW_COLUMNS):
            draw.text((c * tile + 3, 1), title if c else f"step {step}", fill="black")
        row_height = grid.shape[0] // len(rows)
        for r, label in enumerate(labels):
            draw.text((4, header + r * row_height + 3), label, fill=(200, 0, 0))
        path = self.dir / "previews" / f"step_{step:07d}.png"
        image.save(path)
        return path

    def _preview_field(self, step: int, batch: dict[str, torch.Tensor], pred: dict[str, torch.Tensor]) -> Path:
        """previews/step_XXXXXXX.png for the field design: per shape, the predicted solid and
        the truth seen from the front and the side and cut at mid-height, beside the hull and
        the round prior they start from."""
        from PIL import Image, ImageDraw

        from model_server.learning.networks import FieldNet

        grids = batch["grids"].float()
        solid = (FieldNet.solid(pred, grids) < 0).cpu().numpy()
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

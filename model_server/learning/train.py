"""Training of the multi-view network: ``python -m model_server train`` (one process) or
``torchrun --nproc_per_node K -m model_server train`` (distributed data parallel).

Each step shows the network a random sketch style per shape, with the top view dropped
half the time so the model also works from front and side alone. Losses follow Lun et al.:
L1 depth and L2 normals on the foreground, mask cross-entropy, and an optional conditional
adversarial term (``--adversarial W``; the paper uses 0.01).

Resuming continues the same run: the data order and every random choice are functions of
(seed, epoch, sample), and the checkpoint holds model, optimiser, step and RNG states, so
N steps + resume + N steps gives the weights of 2N steps. ``--batch`` is per process.
Only rank 0 writes: the checkpoint, log-dir/losses.csv, val.csv, loss_curves.png and
previews/step_XXXXXXX.png (sketch | predicted maps | ground truth).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from model_server.learning import checkpoint as ckpt
from model_server.learning.data import generate as dataset
from model_server.device import DEVICES, resolve_device
from model_server.learning.networks import (PatchDiscriminator, build_model, config_for, gan_loss, map_losses, network_input,
                       parameter_count, predicted_maps, target_maps)
from model_server.geometry.views import VIEWS

COLUMNS = ("step", "epoch", "loss", "depth", "normal", "mask", "adv_g", "adv_d", "lr", "seconds")
VAL_COLUMNS = ("step", "loss", "depth", "normal", "mask")
INPUT_ORDER = ("front", "side", "top")
PREVIEW_VIEWS = (0, 1, 2)
PREVIEW_COLUMNS = ("sketch", "depth", "normal", "mask", "true depth", "true normal", "true mask")
PREVIEW_TILE = 128
DEFAULT_STEPS = 20000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train`` command's options."""
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (from `python -m model_server dataset`)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (rewritten at every interval)")
    parser.add_argument("--resume", type=Path, help="continue from this checkpoint (often the same file as --out)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help=f"train until this total step count (default {DEFAULT_STEPS})")
    length.add_argument("--epochs", type=int, help="train until this many passes over the training split")
    parser.add_argument("--batch", type=int, default=8, help="shapes per step and process (default %(default)s)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA (ignored on CPU)")
    parser.add_argument("--adversarial", type=float, default=0.0, metavar="W",
                        help="weight of the conditional adversarial term; 0 turns it off (paper: 0.01)")
    parser.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (default %(default)s)")
    parser.add_argument("--log-dir", type=Path, help="losses.csv, curves and previews (default: OUT_STEM_logs next to --out)")
    parser.add_argument("--checkpoint-every", type=int, default=500, metavar="N",
                        help="save, validate and preview every N steps, and at the end (default %(default)s)")
    parser.add_argument("--width", type=int, help="encoder width of a new network (default 32; a resumed one keeps its own)")
    parser.add_argument("--workers", type=int, default=2, help="data loading processes per training process")
    parser.add_argument("--seed", type=int, help="seed of initialisation, data order and augmentation "
                        "(default 0; a resumed run keeps its own)")
    parser.add_argument("--val-limit", type=int, default=64, help="validation shapes scored at each checkpoint")


# ---------------------------------------------------------------------------- data


class SketchMaps(Dataset):
    """Shapes of one split as network inputs and targets.

    Indexed by (shape index, epoch): the sketch style and whether the top view is shown are
    drawn from a generator seeded by (seed, epoch, index), so they do not depend on worker
    processes or on where a run was resumed."""

    def __init__(self, data_dir: Path, entries: list[dict], meta: dict, in_views: int, seed: int) -> None:
        self.data_dir, self.entries, self.in_views, self.seed = data_dir, entries, in_views, seed
        names = list(meta["sketch_views"])
        self.view_index = [names.index(v) for v in INPUT_ORDER if v in names]
        self.has_top = "top" in names

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, epoch = key
        shape = dataset.load_shape(self.data_dir, self.entries[index])
        rng = np.random.default_rng([self.seed, epoch, index])
        style = int(rng.integers(len(shape["sketch"])))
        show_top = self.has_top and bool(rng.random() < 0.5)
        ink = torch.from_numpy(np.ascontiguousarray(shape["sketch"][style][self.view_index], np.float32))
        x = network_input(ink[None], torch.tensor([show_top]), self.in_views)[0]
        return {"input": x, "depth": torch.from_numpy(shape["depth"]),
                "normal": torch.from_numpy(shape["normal"]).permute(0, 3, 1, 2).contiguous(),
                "mask": torch.from_numpy(shape["mask"].astype(np.float32))}


class ResumableSampler(DistributedSampler):
    """DistributedSampler that yields (index, epoch) keys and can start mid-epoch."""

    def __init__(self, dataset: Dataset, rank: int, world: int, seed: int, batch: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.batch, self.skip = batch, 0

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.num_samples / self.batch)

    def set_position(self, epoch: int, step_in_epoch: int) -> None:
        self.set_epoch(epoch)
        self.skip = step_in_epoch * self.batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.skip:]
        return iter([(i, self.epoch) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.skip


# ---------------------------------------------------------------------------- processes


@dataclass
class Processes:
    """Where this process sits in a torchrun job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Average a tensor over all processes (for logging)."""
        if self.world > 1:
            dist.all_reduce(values)
            values /= self.world
        return values


def start_processes(device_name: str) -> tuple[Processes, torch.device]:
    """Join the torchrun job if there is one (gloo on CPU, nccl on CUDA) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device_type = resolve_device(device_name)
    if world <= 1:
        return Processes(), torch.device(device_type)
    procs = Processes(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device_type == "cuda":
        torch.cuda.set_device(procs.local_rank)
        device = torch.device("cuda", procs.local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo",
                            **({"device_id": device} if device_type == "cuda" else {}))
    return procs, device


# ---------------------------------------------------------------------------- training


class Trainer:
    """The network, the optional discriminator, their optimisers, and one training step."""

    def __init__(self, config: dict[str, Any], device: torch.device, procs: Processes, lr: float,
                 adversarial: float, amp: bool) -> None:
        self.config, self.device, self.adversarial = config, device, adversarial
        self.net = build_model(config).to(device)
        self.disc = PatchDiscriminator(config).to(device) if adversarial > 0 else None
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr, betas=(0.5, 0.999))
        self.disc_opt = (torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.5, 0.999))
                         if self.disc is not None else None)
        # The *_ddp wrappers average gradients over processes; the bare modules serve the rest.
        self.net_ddp = self._distribute(self.net, procs)
        self.disc_ddp = self._distribute(self.disc, procs) if self.disc is not None else None
        self.amp = amp and device.type == "cuda"

    def _distribute(self, module: torch.nn.Module, procs: Processes) -> torch.nn.Module:
        if procs.world == 1:
            return module
        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

    def step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One optimisation step; returns (loss, depth, normal, mask, adv_g, adv_d) of this process."""
        x = batch["input"]
        with self.autocast():
            pred = self.net_ddp(x)
        terms = map_losses(pred, batch)
        loss = terms["depth"] + terms["normal"] + terms["mask"]
        adv_g = adv_d = torch.zeros((), device=x.device)
        if self.disc is not None:
            # The generator's term goes through the bare discriminator, frozen, so the
            # discriminator's own DDP wrapper sees exactly one forward and one backward.
            self.disc.requires_grad_(False)
            with self.autocast():
                adv_g = gan_loss(self.disc(x, predicted_maps(pred)), real=True)
            loss = loss + self.adversarial * adv_g
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.disc is not None:
            self.disc.requires_grad_(True)
            n = len(x)
            with self.autocast():
                logits = self.disc_ddp(torch.cat([x, x]), torch.cat([target_maps(batch), predicted_maps(pred).detach()]))
            adv_d = 0.5 * (gan_loss(logits[:n], real=True) + gan_loss(logits[n:], real=False))
            self.disc_opt.zero_grad(set_to_none=True)
            adv_d.backward()
            self.disc_opt.step()
        return torch.stack([loss, terms["depth"], terms["normal"], terms["mask"], adv_g, adv_d]).detach().float()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast():
            return self.net(x)

    @torch.no_grad()
    def validate(self, loader: DataLoader) -> list[float]:
        """Mean (loss, depth, normal, mask) over a loader, without the adversarial term."""
        sums, count = torch.zeros(4, dtype=torch.float64), 0
        for batch in loader:
            batch = to_device(batch, self.device)
            terms = map_losses(self.predict(batch["input"]), batch)
            parts = torch.stack([terms["depth"], terms["normal"], terms["mask"]]).double().cpu()
            sums += len(batch["input"]) * torch.cat([parts.sum()[None], parts])
            count += len(batch["input"])
        return (sums / max(count, 1)).tolist()

    def state_dict(self) -> dict[str, Any]:
        cpu = lambda sd: {k: v.detach().cpu() for k, v in sd.items()}  # noqa: E731
        return {"config": self.config, "model": cpu(self.net.state_dict()), "optimizer": self.opt.state_dict(),
                "discriminator": cpu(self.disc.state_dict()) if self.disc is not None else None,
                "discriminator_optimizer": self.disc_opt.state_dict() if self.disc_opt is not None else None}

    def load_state_dict(self, state: dict[str, Any], lr: float) -> None:
        """Restore weights and optimisers (a discriminator only if both sides have one); --lr wins."""
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.disc is not None and state.get("discriminator") is not None:
            self.disc.load_state_dict(state["discriminator"])
            self.disc_opt.load_state_dict(state["discriminator_optimizer"])
        for opt in filter(None, (self.opt, self.disc_opt)):
            for group in opt.param_groups:
                group["lr"] = lr


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# ---------------------------------------------------------------------------- logs


class TrainingLog:
    """Rank 0's files: losses.csv (one row per step), val.csv, loss_curves.png, previews/."""

    def __init__(self, log_dir: Path, history: list[list[float]], val_history: list[list[float]], in_views: int) -> None:
        self.dir, self.in_views = log_dir, in_views
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
        names = ["loss", "depth", "normal", "mask"] + (["adv_g", "adv_d"] if np.any(h[:, COLUMNS.index("adv_d")]) else [])
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3), squeeze=False)
        window = max(1, len(h) // 50)
        v = np.asarray(self.val_history) if self.val_history else None
        for ax, name in zip(axes[0], names):
            y = h[:, COLUMNS.index(name)]
            ax.plot(h[:, 0], y, color="0.8", lw=0.6)
            if window > 1:
                smooth = np.convolve(y, np.ones(window) / window, mode="valid")
                ax.plot(h[window - 1:, 0], smooth, color="C0", lw=1.2, label="train")
            if v is not None and name in VAL_COLUMNS:
                ax.plot(v[:, 0], v[:, VAL_COLUMNS.index(name)], "o-", color="C1", ms=3, label="val")
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
                sketch = 1.0 - ink[s, k] if k < len(sketch_names) else np.ones_like(ink[s, 0])
                tiles = [np.repeat(sketch[..., None], 3, axis=2)]
                for maps in (guess, truth):
                    fg = maps["mask"][s, v] > 0.5
                    tiles += [_depth_image(maps["depth"][s, v], fg), _normal_image(maps["normal"][s, v], fg),
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


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[list[float]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(_csv_row(columns, r) for r in rows)


def _csv_row(columns: tuple[str, ...], row: list[float]) -> list[str]:
    return [str(int(v)) if name in ("step", "epoch") else f"{v:.6g}" for name, v in zip(columns, row)]


def _depth_image(depth: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """RGB depth (near = light) on a white background; depth in [-1, 1] maps to the colour scale."""
    import matplotlib

    rgb = matplotlib.colormaps["viridis"](np.clip(0.5 - 0.5 * depth, 0.0, 1.0))[..., :3]
    return np.where(fg[..., None], rgb, 1.0)


def _normal_image(normal: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """(3, R, R) camera-frame normals as RGB, white background."""
    return np.where(fg[..., None], 0.5 + 0.5 * np.moveaxis(normal, 0, -1), 1.0).clip(0.0, 1.0)


# ---------------------------------------------------------------------------- the command


def _table(columns: tuple[str, ...], rows: list[list[float]]) -> dict[str, Any]:
    """A log table as the checkpoint stores it: column names and a float64 tensor."""
    return {"columns": list(columns), "rows": torch.tensor(rows, dtype=torch.float64).view(-1, len(columns))}


def _plain(args: argparse.Namespace) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if not callable(v)}


def _check_args(args: argparse.Namespace) -> None:
    for name in ("batch", "checkpoint_every", "steps", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    if args.workers < 0 or args.adversarial < 0 or args.lr <= 0:
        raise ValueError("--workers and --adversarial must be >= 0 and --lr > 0")
    if args.resume is not None and not args.resume.is_file():
        raise ValueError(f"--resume {args.resume} does not exist")


def run(args: argparse.Namespace) -> None:
    """Train (or resume) as the arguments say; under torchrun, every process calls this."""
    _check_args(args)
    meta = dataset.read_meta(args.data)
    entries = {split: dataset.read_index(args.data, split) for split in ("train", "val")}
    if not entries["train"]:
        raise ValueError(f"{args.data} has no shapes in its train split")
    state = ckpt.load_checkpoint(args.resume) if args.resume else None
    if state is not None and state.get("kind") != "training":
        raise ValueError(f"{args.resume} is an exported inference checkpoint; resume from a training checkpoint")
    if state is not None:
        config, seed = state["config"], int(state["seed"])
        for name, value, kept in (("width", args.width, config["width"]), ("seed", args.seed, seed)):
            if value is not None and value != kept:
                raise ValueError(f"--{name} {value} differs from the resumed run's {name} {kept}")
        args.seed = seed
    else:
        args.seed = 0 if args.seed is None else args.seed
        width = args.width or 32
        config = config_for(int(meta["resolution"]), width=width, view_width=max(2, width // 4),
                            in_views=3 if "top" in meta["sketch_views"] else 2)
    if config["resolution"] != int(meta["resolution"]):
        raise ValueError(f"the network works at {config['resolution']}² but the dataset at {meta['resolution']}²")

    procs, device = start_processes(args.device)
    try:
        _train(args, meta, entries, config, state, procs, device)
    finally:
        if procs.world > 1:
            dist.destroy_process_group()


def _train(args: argparse.Namespace, meta: dict, entries: dict[str, list[dict]], config: dict[str, Any],
           state: dict[str, Any] | None, procs: Processes, device: torch.device) -> None:
    from tqdm import tqdm

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    if args.amp and device.type != "cuda" and procs.main:
        print("note: --amp is ignored on the CPU (bf16 autocast is only faster on GPUs)", file=sys.stderr)
    trainer = Trainer(config, device, procs, args.lr, args.adversarial, args.amp)
    step, history, val_history = 0, [], []
    if state is not None:
        trainer.load_state_dict(state, args.lr)
        ckpt.set_rng_state(state["rng"])
        step = int(state["step"])
        history = state["history"]["rows"].tolist()
        val_history = state["val_history"]["rows"].tolist()

    train_set = SketchMaps(args.data, entries["train"], meta, config["in_views"], args.seed)
    sampler = ResumableSampler(train_set, procs.rank, procs.world, args.seed, args.batch)
    loader = DataLoader(train_set, batch_size=args.batch, sampler=sampler, num_workers=args.workers,
                        pin_memory=device.type == "cuda")
    steps_per_epoch = sampler.steps_per_epoch
    total = args.epochs * steps_per_epoch if args.epochs else (args.steps or DEFAULT_STEPS)

    log = val_loader = preview_batch = None
    if procs.main:
        log_dir = args.log_dir or args.out.with_name(f"{args.out.stem}_logs")
        log = TrainingLog(log_dir, history, val_history, config["in_views"])
        val_entries = (entries["val"] or entries["train"])[: args.val_limit]
        val_set = SketchMaps(args.data, val_entries, meta, config["in_views"], args.seed)
        keys = [(i, 0) for i in range(len(val_set))]
        val_loader = DataLoader(val_set, batch_size=args.batch, sampler=keys, num_workers=0)
        preview_batch = to_device(next(iter(DataLoader(val_set, batch_size=2, sampler=keys[:2]))), device)
        print(f"training {parameter_count(trainer.net) / 1e6:.2f}M parameters on {procs.world} x {device.type}, "
              f"{len(entries['train'])} shapes, {steps_per_epoch} steps per epoch, step {step} -> {total}; logs in {log_dir}",
              file=sys.stderr)

    def save() -> None:
        """Validate, preview and checkpoint on rank 0 while the others wait."""
        if procs.main:
            val = trainer.validate(val_loader)
            log.log_val([float(step)] + val)
            log.preview(step, preview_batch, trainer.predict(preview_batch["input"]))
            log.plot()
            ckpt.save_checkpoint(args.out, {
                "format": ckpt.FORMAT, "kind": "training", **trainer.state_dict(),
                "step": step, "epoch": step // steps_per_epoch, "seed": args.seed, "rng": ckpt.rng_state(),
                "history": _table(COLUMNS, history), "val_history": _table(VAL_COLUMNS, val_history),
                "args": _plain(args)})
        procs.barrier()

    bar = tqdm(total=total, initial=min(step, total), disable=not procs.main, desc="train", dynamic_ncols=True)
    try:
        while step < total:
            epoch, offset = divmod(step, steps_per_epoch)
            sampler.set_position(epoch, offset)
            for batch in loader:
                started = time.perf_counter()
                losses = procs.mean(trainer.step(to_device(batch, device))).tolist()
                step += 1
                if procs.main:
                    log.log([step, epoch] + losses + [trainer.opt.param_groups[0]["lr"], time.perf_counter() - started])
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[0]:.4f}", depth=f"{losses[1]:.4f}", refresh=False)
                if step % args.checkpoint_every == 0 or step == total:
                    save()
                if step >= total:
                    break
        if state is not None and int(state["step"]) >= total and procs.main:
            print(f"{args.resume} is already at step {state['step']} >= {total}; nothing to do", file=sys.stderr)
    finally:
        bar.close()
        if log is not None:
            log.close()

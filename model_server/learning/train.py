"""The ``train`` command: ``python -m model_server train`` (one process) or
``torchrun --nproc_per_node K -m model_server train`` (distributed data parallel).

Each step shows the network one of each shape's stored readings of its sketches (a random
style, the top drawn or not, the side drawn slightly off; :mod:`.loader`); the losses are
the network's (:func:`.networks.losses`), the step the trainer's (:mod:`.trainer`).

Resuming continues the same run: the data order and every random choice are functions of
(seed, epoch, sample), and the checkpoint holds model, optimiser, step and RNG states, so
N steps + resume + N steps gives the weights of 2N steps. ``--batch`` is per process.
Only rank 0 writes: the checkpoint, and the logs of :mod:`.logs` in --log-dir.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from model_server.device import DEVICES
from model_server.learning import checkpoint as ckpt
from model_server.learning.data.format import read_index, read_meta
from model_server.learning.loader import FieldSamples, ResumableSampler, to_device
from model_server.learning.logs import COLUMNS, VAL_COLUMNS, TrainingLog
from model_server.learning.networks import CONFIG, parameter_count
from model_server.learning.processes import Processes, start_processes
from model_server.learning.trainer import Trainer

DEFAULT_STEPS = 20000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train`` command's options."""
    parser.add_argument("--data", type=Path, nargs="+", required=True,
                        help="dataset folder(s) (from `python -m model_server dataset`); several are mixed")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (rewritten at every interval)")
    parser.add_argument("--resume", type=Path, help="continue from this checkpoint (often the same file as --out)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help=f"train until this total step count (default {DEFAULT_STEPS})")
    length.add_argument("--epochs", type=int, help="train until this many passes over the training split")
    parser.add_argument("--hold-out", default="", metavar="FAMILIES",
                        help="comma-separated families to leave out of training, so evaluation can measure kinds "
                             "the network never saw (a resumed run keeps its own)")
    parser.add_argument("--batch", type=int, default=8, help="shapes per step and process (default %(default)s)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA (ignored on CPU)")
    parser.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (default %(default)s)")
    parser.add_argument("--log-dir", type=Path, help="losses.csv, curves and previews (default: OUT_STEM_logs next to --out)")
    parser.add_argument("--checkpoint-every", type=int, default=500, metavar="N",
                        help="save, validate and preview every N steps, and at the end (default %(default)s)")
    parser.add_argument("--width", type=int, help=f"full-resolution width of a new network (default {CONFIG['width']}; "
                        "a resumed one keeps its own)")
    parser.add_argument("--workers", type=int, default=2, help="data loading processes per training process")
    parser.add_argument("--seed", type=int, help="seed of initialisation, data order and augmentation "
                        "(default 0; a resumed run keeps its own)")
    parser.add_argument("--val-limit", type=int, default=64, help="validation shapes scored at each checkpoint")


def _table(columns: tuple[str, ...], rows: list[list[float]]) -> dict[str, Any]:
    """A log table as the checkpoint stores it: column names and a float64 tensor."""
    return {"columns": list(columns), "rows": torch.tensor(rows, dtype=torch.float64).view(-1, len(columns))}


def _plain(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments as plain values, so the checkpoint stays loadable weights-only."""
    def plain(v: Any) -> Any:
        return str(v) if isinstance(v, Path) else [plain(x) for x in v] if isinstance(v, list) else v

    return {k: plain(v) for k, v in vars(args).items() if not callable(v)}


def _check_args(args: argparse.Namespace) -> None:
    """ValueError for arguments out of range, before any data or process group is touched."""
    for name in ("batch", "checkpoint_every", "steps", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    if args.workers < 0 or args.lr <= 0:
        raise ValueError("--workers must be >= 0 and --lr > 0")
    if args.resume is not None and not args.resume.is_file():
        raise ValueError(f"--resume {args.resume} does not exist")


def run(args: argparse.Namespace) -> None:
    """Train (or resume) as the arguments say; under torchrun, every process calls this."""
    _check_args(args)
    folders = list(args.data)
    for folder in folders:
        read_meta(folder)
    state = ckpt.load_checkpoint(args.resume) if args.resume else None
    if state is not None:
        args.hold_out = state.get("args", {}).get("hold_out", "")
    held_out = {f.strip() for f in args.hold_out.split(",") if f.strip()}
    entries = {split: [{**e, "folder": str(folder)} for folder in folders for e in read_index(folder, split)
                       if e["family"] not in held_out] for split in ("train", "val")}
    if not entries["train"]:
        raise ValueError(f"{', '.join(map(str, folders))} hold no shapes in their train split"
                         + (" outside --hold-out" if held_out else ""))
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
        config = {**CONFIG, "width": args.width or CONFIG["width"]}

    procs, device = start_processes(args.device)
    try:
        _train(args, entries, config, state, procs, device)
    finally:
        procs.close()


def _train(args: argparse.Namespace, entries: dict[str, list[dict]], config: dict[str, Any],
           state: dict[str, Any] | None, procs: Processes, device: torch.device) -> None:
    """The training loop of this process: step, log, and validate, preview and save every --checkpoint-every."""
    from tqdm import tqdm

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    if args.amp and device.type != "cuda" and procs.main:
        print("note: --amp is ignored on the CPU (bf16 autocast is only faster on GPUs)", file=sys.stderr)
    trainer = Trainer(config, device, procs, args.lr, args.amp)
    step, history, val_history = 0, [], []
    if state is not None:
        trainer.load_state_dict(state, args.lr)
        ckpt.set_rng_state(state["rng"])
        step = int(state["step"])
        history = state["history"]["rows"].tolist()
        val_history = state["val_history"]["rows"].tolist()

    def split(chosen: list[dict]) -> FieldSamples:
        return FieldSamples(args.data[0], chosen, args.seed)

    train_set = split(entries["train"])
    if not len(train_set):
        raise ValueError(f"{', '.join(map(str, args.data))} hold no shapes with the network's inputs; make the "
                         "datasets again with this version's `dataset` command (into new folders)")
    sampler = ResumableSampler(train_set, procs.rank, procs.world, args.seed, args.batch)
    loader = DataLoader(train_set, batch_size=args.batch, sampler=sampler, num_workers=args.workers,
                        pin_memory=device.type == "cuda")
    steps_per_epoch = sampler.steps_per_epoch
    total = args.epochs * steps_per_epoch if args.epochs else (args.steps or DEFAULT_STEPS)

    log = val_loader = preview_batch = None
    if procs.main:
        log_dir = args.log_dir or args.out.with_name(f"{args.out.stem}_logs")
        log = TrainingLog(log_dir, history, val_history)
        val_entries = (entries["val"] or entries["train"])[: args.val_limit]
        val_set = split(val_entries)
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
            log.preview(step, preview_batch, trainer.predict(preview_batch))
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
                    bar.set_postfix(loss=f"{losses[0]:.4f}", occupancy=f"{losses[1]:.4f}", refresh=False)
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

"""Checkpoints: atomic, loadable with ``torch.load(weights_only=True)``, carrying the model config.

A training checkpoint is a plain dict of tensors and plain Python values:

    format, kind="training", config, model (fp32 state dict), step, epoch, seed,
    optimizer, rng {torch, cuda, numpy, python}, history {columns, rows}, val_history {columns, rows}, args

An inference checkpoint (``export_weights``) keeps only format, kind="inference", config,
step and an fp16 copy of the weights: what the server ships. ``load_model`` reads either.
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_server.files import atomic_write
from model_server.learning.networks import FieldNet, build_model

FORMAT = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        torch.save(state, f)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with the safe (weights-only) unpickler; ValueError for a file that is not one."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path} is not a readable Sketch2Mesh checkpoint ({exc.__class__.__name__})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT or "config" not in state:
        raise ValueError(f"{path} is not a Sketch2Mesh checkpoint (format {FORMAT})")
    return state


def rng_state() -> dict[str, Any]:
    """Every random generator's state as tensors and plain lists (safe to load weights-only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only when the device count matches)."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


def export_weights(checkpoint: str | os.PathLike, out: str | os.PathLike) -> None:
    """Write the fp16, inference-only version of a training checkpoint (config + weights)."""
    state = load_checkpoint(checkpoint)
    weights = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
    save_checkpoint(out, {"format": FORMAT, "kind": "inference", "config": state["config"],
                          "step": int(state.get("step", 0)), "model": weights})


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> FieldNet:
    """The network of a training or exported checkpoint, in float32 eval mode on ``device``."""
    state = load_checkpoint(path)
    model = build_model(state["config"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()})
    return model.to(device).eval()


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m model_server export-weights CKPT --out WEIGHTS``."""
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (from `train`)")
    parser.add_argument("--out", type=Path, required=True, help="fp16 inference checkpoint to write")


def run_export(args: argparse.Namespace) -> None:
    """Write the fp16 weights of ``args.checkpoint`` to ``args.out`` and report their size."""
    export_weights(args.checkpoint, args.out)
    print(f"Wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB, fp16)")

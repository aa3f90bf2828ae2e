"""Choosing the compute device: 'auto' means CUDA when torch sees a GPU, else the CPU."""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> str:
    """Turn a requested device ('auto', 'cpu', 'cuda') into the one that will be used.

    Raises ValueError with a user-facing sentence when CUDA is asked for but absent."""
    name = name.lower()
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {name!r}")
    if name == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if name == "cuda":
        raise ValueError("CUDA was requested but torch sees no GPU; use --device cpu or auto.")
    return "cpu"

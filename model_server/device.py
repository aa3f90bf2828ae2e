"""Choosing the compute device ('auto' means CUDA when torch sees a GPU, else the CPU), and
torch's CPU threads, set once per process."""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")
CPU_THREADS = 1


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


def use_cpu_threads(device: str) -> None:
    """Give torch ``CPU_THREADS`` threads when jobs run on the CPU. Call it once per
    process, at start-up, on the main thread (threads started later take its count): the
    server's ``serve``, the command line's reconstruct and evaluate. Never per job: setting
    and restoring it around a job could leave it wrong for a job running beside it (an
    abandoned job's worker and the next one). One thread: Fit to strokes' many small
    kernels run faster without thread hand-offs (133 vs 162 ms per iteration on a 24k-face
    mesh, 2 cores), and the learned backend's network is no slower. On a GPU the CPU
    threads are left as torch sets them."""
    if device != "cpu":
        return
    import torch

    torch.set_num_threads(CPU_THREADS)

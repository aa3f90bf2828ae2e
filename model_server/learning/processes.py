"""The torchrun job this process belongs to: rank, world size, device, and the collectives training uses.

A plain ``python -m model_server train`` is rank 0 of a world of 1, and then nothing here
touches ``torch.distributed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from model_server.device import resolve_device


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

    def close(self) -> None:
        """Leave the process group (nothing to do for a single process)."""
        if self.world > 1:
            dist.destroy_process_group()


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

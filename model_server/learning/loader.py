"""Training batches: a dataset split as network inputs and targets, and a resumable sampler.

Every random choice about a sample (which stored reading of its sketches it shows) is a
function of (seed, epoch, shape index), and the sampler can start mid-epoch, so a resumed
run sees exactly the batches an uninterrupted one would have.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


class FieldSamples(Dataset):
    """Shapes as the network's inputs and targets.

    Each item is one of the shape's stored readings of its sketches (field_input and
    field_grids, made by the dataset generator: styles, top drawn or not, misregistration),
    chosen by (seed, epoch, index), and the truth's occupancy on the training grid. An
    entry's "folder" key names its dataset (training may mix several)."""

    def __init__(self, data_dir: Path, entries: list[dict], seed: int) -> None:
        self.data_dir, self.seed = data_dir, seed
        self.entries = [e for e in entries if _holds(Path(e.get("folder", data_dir)) / e["file"], "field_input")]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, epoch = key
        entry = self.entries[index]
        path = Path(entry.get("folder", self.data_dir)) / entry["file"]
        with np.load(path, allow_pickle=False) as data:
            count = len(data["field_style"])
            variant = int(np.random.default_rng([self.seed, epoch, index]).integers(count))
            x, grids, packed = data["field_input"][variant], data["field_grids"][variant], data["occupancy"]
        size = grids.shape[-1]
        occupancy = np.unpackbits(packed, count=size**3).reshape(size, size, size)
        return {"input": torch.from_numpy(x.astype(np.float32)), "grids": torch.from_numpy(grids.astype(np.float32)),
                "occupancy": torch.from_numpy(occupancy.astype(np.float32))}


def _holds(path: Path, name: str) -> bool:
    """Whether a shape file stores the array ``name`` (a shape whose sketches share no
    volume in any reading has no network inputs, and is left out of training)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return f"{name}.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        raise ValueError(f"{path} is not a readable shape file; make the dataset again") from None


class ResumableSampler(DistributedSampler):
    """DistributedSampler that yields (index, epoch) keys and can start mid-epoch."""

    def __init__(self, dataset: Dataset, rank: int, world: int, seed: int, batch: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.batch, self.skip = batch, 0

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.num_samples / self.batch)

    def set_position(self, epoch: int, step_in_epoch: int) -> None:
        """Start the next pass at step ``step_in_epoch`` of ``epoch``."""
        self.set_epoch(epoch)
        self.skip = step_in_epoch * self.batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.skip:]
        return iter([(i, self.epoch) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A batch's tensors on ``device`` (asynchronously from pinned memory)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

"""Training batches: a dataset split as network inputs and targets, and a resumable sampler.

Every random choice about a sample (its sketch style, whether the top view is shown) is a
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

from model_server.geometry.maps import Maps
from model_server.learning.data.format import load_shape
from model_server.learning.networks import INPUT_ORDER, network_input
from model_server.reconstruct.backends.refine_maps import downsample


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
        shape = load_shape(self.entries[index].get("folder", self.data_dir), self.entries[index])
        rng = np.random.default_rng([self.seed, epoch, index])
        style = int(rng.integers(len(shape["sketch"])))
        show_top = self.has_top and bool(rng.random() < 0.5)
        ink = torch.from_numpy(np.ascontiguousarray(shape["sketch"][style][self.view_index], np.float32))
        x = network_input(ink[None], torch.tensor([show_top]), self.in_views)[0]
        return {"input": x, "depth": torch.from_numpy(shape["depth"]),
                "normal": torch.from_numpy(shape["normal"]).permute(0, 3, 1, 2).contiguous(),
                "mask": torch.from_numpy(shape["mask"].astype(np.float32))}


class HullMaps(Dataset):
    """Shapes of one split as inputs and targets of the hull-refining design (``RefineNet``).

    Each item is one of the shape's stored hull readings (refine_input, made by the
    dataset generator from its sketches: styles, top drawn or not, misregistration) and
    ``views`` of its 14 views (a random subset per (seed, epoch, index); all 14 in order
    when ``views`` is None), with the ground truth downsampled to the network's resolution."""

    def __init__(self, data_dir: Path, entries: list[dict], seed: int, views: int | None = None) -> None:
        self.data_dir, self.seed, self.views = data_dir, seed, views
        self.entries = [e for e in entries if _holds(Path(e.get("folder", data_dir)) / e["file"], "refine_input")]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, epoch = key
        shape = load_shape(self.entries[index].get("folder", self.data_dir), self.entries[index])
        if "refine_input" not in shape:
            raise ValueError(f"shape {self.entries[index]['id']} has no hull inputs; make the dataset at 256² "
                             "with this version's `dataset` command")
        rng = np.random.default_rng([self.seed, epoch, index])
        inputs = shape["refine_input"]
        variant = int(rng.integers(len(inputs)))
        count = len(shape["depth"])
        views = np.arange(count) if self.views is None else np.sort(rng.choice(count, self.views, replace=False))
        x = inputs[variant][views]
        truth = downsample(Maps(shape["depth"], shape["normal"], shape["mask"]), shape["depth"].shape[-1] // x.shape[-1])
        return {"input": torch.from_numpy(np.ascontiguousarray(x, np.float32)), "views": torch.from_numpy(views),
                "depth": torch.from_numpy(truth.depth[views]),
                "normal": torch.from_numpy(np.moveaxis(truth.normal[views], -1, 1).copy()),
                "mask": torch.from_numpy(truth.mask[views])}


class FieldSamples(Dataset):
    """Shapes as inputs and targets of the field design (``FieldNet``).

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
            if "field_input" not in data.files:
                raise ValueError(f"shape {entry['id']} has no field inputs; make the dataset with this "
                                 "version's `dataset` command")
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
    with zipfile.ZipFile(path) as archive:
        return f"{name}.npy" in archive.namelist()


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

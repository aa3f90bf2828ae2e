"""Training batches: samples fixed by (seed, epoch, index), shapes without inputs left out,
and the sharded sampler that resumes mid-epoch."""

from __future__ import annotations

from pathlib import Path

import torch

from model_server.learning.data.format import read_index
from model_server.learning.loader import FieldSamples, ResumableSampler, to_device


def test_sampler_shards_a_shuffled_epoch_and_starts_mid_epoch() -> None:
    data = list(range(10))
    ranks = [ResumableSampler(data, rank, 2, seed=0, batch=2) for rank in (0, 1)]
    for sampler in ranks:
        sampler.set_position(3, 0)
    keys = [list(s) for s in ranks]
    assert sorted(i for k in keys for i, _ in k) == data and {e for k in keys for _, e in k} == {3}
    assert ranks[0].steps_per_epoch == 3
    ranks[0].set_position(3, 1)
    assert list(ranks[0]) == keys[0][2:] and len(ranks[0]) == 3
    ranks[0].set_position(4, 0)
    assert list(ranks[0]) != keys[0]


def test_a_sample_depends_only_on_seed_epoch_and_index(toy_data: Path) -> None:
    entries = read_index(toy_data)
    samples = FieldSamples(toy_data, entries, seed=7)
    assert len(samples) == 2                       # the third toy shape has no field inputs: left out
    sample = samples[1, 4]
    assert {k: tuple(v.shape) for k, v in sample.items()} == {
        "input": (13, 8, 8, 8), "grids": (3, 16, 16, 16), "occupancy": (16, 16, 16)}
    again = FieldSamples(toy_data, entries, seed=7)[1, 4]
    assert all(torch.equal(sample[k], again[k]) for k in sample)
    readings = {samples[1, epoch]["input"][0, 0, 0, 0].item() for epoch in range(12)}
    assert len(readings) == 2                      # the stored readings vary with the epoch
    assert set(sample["occupancy"].unique().tolist()) <= {0.0, 1.0}


def test_entries_may_come_from_several_folders(toy_data: Path, tmp_path: Path) -> None:
    entries = [{**e, "folder": str(toy_data)} for e in read_index(toy_data)]
    assert len(FieldSamples(tmp_path, entries, seed=0)) == 2


def test_to_device_moves_every_tensor() -> None:
    batch = to_device({"a": torch.zeros(2), "b": torch.ones(3)}, torch.device("cpu"))
    assert set(batch) == {"a", "b"} and all(v.device.type == "cpu" for v in batch.values())

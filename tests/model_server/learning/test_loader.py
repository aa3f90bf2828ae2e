"""Training batches: samples fixed by (seed, epoch, index), and the sharded sampler that resumes mid-epoch."""

from __future__ import annotations

from pathlib import Path

import torch

from model_server.learning.data.format import read_index, read_meta
from model_server.learning.loader import ResumableSampler, SketchMaps, to_device


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
    meta, entries = read_meta(toy_data), read_index(toy_data)
    maps = SketchMaps(toy_data, entries, meta, in_views=3, seed=7)
    sample = maps[1, 4]
    assert {k: tuple(v.shape) for k, v in sample.items()} == {
        "input": (4, 32, 32), "depth": (14, 32, 32), "normal": (14, 3, 32, 32), "mask": (14, 32, 32)}
    again = SketchMaps(toy_data, entries, meta, in_views=3, seed=7)[1, 4]
    assert all(torch.equal(sample[k], again[k]) for k in sample)
    inputs = [maps[1, epoch]["input"] for epoch in range(12)]
    assert {bool(x[3].any()) for x in inputs} == {True, False}          # the top view is sometimes dropped
    assert all(x[3].any() or not x[2].any() for x in inputs)           # ...and then its image is blank
    assert len({x[0].sum().item() for x in inputs}) > 1                # styles vary with the epoch
    assert SketchMaps(toy_data, entries, meta, in_views=2, seed=7)[1, 4]["input"].shape == (2, 32, 32)


def test_to_device_moves_every_tensor() -> None:
    batch = to_device({"a": torch.zeros(2), "b": torch.ones(3)}, torch.device("cpu"))
    assert set(batch) == {"a", "b"} and all(v.device.type == "cpu" for v in batch.values())

"""A plain (non-torchrun) process is rank 0 of 1 and never touches torch.distributed; the
two-process case runs in test_train.py's torchrun test."""

from __future__ import annotations

import pytest
import torch

from model_server.learning.processes import Processes, start_processes


def test_a_plain_run_is_one_main_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    procs, device = start_processes("cpu")
    assert procs == Processes() and procs.main and device == torch.device("cpu")
    values = torch.tensor([1.0, 3.0])
    assert procs.mean(values) is values and torch.equal(values, torch.tensor([1.0, 3.0]))
    procs.barrier()
    procs.close()
    assert not torch.distributed.is_initialized()

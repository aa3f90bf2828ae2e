"""One training step of the learned backend's network: the network, its optimiser, mixed
precision and DDP wrapping, validation and the state to checkpoint. The terms are
:func:`model_server.learning.networks.losses`; the step minimises their sum with Adam."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from model_server.learning.loader import to_device
from model_server.learning.networks import build_model, losses
from model_server.learning.processes import Processes


class Trainer:
    """The network, its optimiser, and one training step."""

    def __init__(self, config: dict[str, Any], device: torch.device, procs: Processes, lr: float, amp: bool) -> None:
        self.config, self.device = config, device
        self.net = build_model(config).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        # The DDP wrapper averages gradients over processes; the bare module serves the rest.
        self.net_ddp = (self.net if procs.world == 1 else
                        DistributedDataParallel(self.net, device_ids=[device.index] if device.type == "cuda" else None))
        self.amp = amp and device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

    def step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One optimisation step; returns (loss, each term...) of this process."""
        with self.autocast():
            pred = self.net_ddp(batch["input"])
        terms = losses(pred, batch)
        loss = sum(terms.values())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return torch.stack([loss, *terms.values()]).detach().float()

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with self.autocast():
            return self.net(batch["input"])

    @torch.no_grad()
    def validate(self, loader: DataLoader) -> list[float]:
        """Mean (loss, each term...) over a loader."""
        sums, count = None, 0
        for batch in loader:
            batch = to_device(batch, self.device)
            parts = torch.stack(list(losses(self.predict(batch), batch).values())).double().cpu()
            row = torch.cat([parts.sum()[None], parts]) * len(batch["input"])
            sums = row if sums is None else sums + row
            count += len(batch["input"])
        return [] if sums is None else (sums / max(count, 1)).tolist()

    def state_dict(self) -> dict[str, Any]:
        return {"config": self.config, "model": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "optimizer": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any], lr: float) -> None:
        """Restore weights and optimiser; --lr wins."""
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        for group in self.opt.param_groups:
            group["lr"] = lr

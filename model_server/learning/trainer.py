"""One training step of either design (``RefineNet`` or the paper's ``MultiViewNet``): the
network, the optional discriminator, their optimisers, mixed precision and DDP wrapping,
validation and the state to checkpoint.

Losses follow Lun et al.: L1 depth and L2 normals on the foreground, mask cross-entropy,
and (multi-view design only) an optional conditional adversarial term weighted by
``adversarial`` (the paper uses 0.01). Adam uses the standard betas, or the GAN ones
(0.5, 0.999) when the adversarial term is on.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from model_server.learning.loader import to_device
from model_server.learning.networks import (PatchDiscriminator, build_model, gan_loss, losses, predicted_maps,
                                           run_model, target_maps)
from model_server.learning.processes import Processes


class Trainer:
    """The network, the optional discriminator, their optimisers, and one training step."""

    def __init__(self, config: dict[str, Any], device: torch.device, procs: Processes, lr: float,
                 adversarial: float, amp: bool) -> None:
        self.config, self.device, self.adversarial = config, device, adversarial
        self.net = build_model(config).to(device)
        self.disc = PatchDiscriminator(config).to(device) if adversarial > 0 else None
        betas = (0.5, 0.999) if adversarial > 0 else (0.9, 0.999)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr, betas=betas)
        self.disc_opt = (torch.optim.Adam(self.disc.parameters(), lr=lr, betas=betas)
                         if self.disc is not None else None)
        # The *_ddp wrappers average gradients over processes; the bare modules serve the rest.
        self.net_ddp = self._distribute(self.net, procs)
        self.disc_ddp = self._distribute(self.disc, procs) if self.disc is not None else None
        self.amp = amp and device.type == "cuda"

    def _distribute(self, module: torch.nn.Module, procs: Processes) -> torch.nn.Module:
        if procs.world == 1:
            return module
        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

    def step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One optimisation step; returns (loss, the design's terms..., adv_g, adv_d) of this process."""
        x = batch["input"]
        with self.autocast():
            pred = run_model(self.net_ddp, batch)
        terms = losses(self.net, pred, batch)
        loss = sum(terms.values())
        adv_g = adv_d = torch.zeros((), device=x.device)
        if self.disc is not None:
            # The generator's term goes through the bare discriminator, frozen, so the
            # discriminator's own DDP wrapper sees exactly one forward and one backward.
            self.disc.requires_grad_(False)
            with self.autocast():
                adv_g = gan_loss(self.disc(x, predicted_maps(pred)), real=True)
            loss = loss + self.adversarial * adv_g
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.disc is not None:
            self.disc.requires_grad_(True)
            n = len(x)
            with self.autocast():
                logits = self.disc_ddp(torch.cat([x, x]), torch.cat([target_maps(batch), predicted_maps(pred).detach()]))
            adv_d = 0.5 * (gan_loss(logits[:n], real=True) + gan_loss(logits[n:], real=False))
            self.disc_opt.zero_grad(set_to_none=True)
            adv_d.backward()
            self.disc_opt.step()
        return torch.stack([loss, *terms.values(), adv_g, adv_d]).detach().float()

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with self.autocast():
            return run_model(self.net, batch)

    @torch.no_grad()
    def validate(self, loader: DataLoader) -> list[float]:
        """Mean (loss, the design's terms...) over a loader, without the adversarial term."""
        sums, count = None, 0
        for batch in loader:
            batch = to_device(batch, self.device)
            terms = losses(self.net, self.predict(batch), batch)
            parts = torch.stack(list(terms.values())).double().cpu()
            sums = torch.zeros(len(parts) + 1, dtype=torch.float64) if sums is None else sums
            sums += len(batch["input"]) * torch.cat([parts.sum()[None], parts])
            count += len(batch["input"])
        return [] if sums is None else (sums / max(count, 1)).tolist()

    def state_dict(self) -> dict[str, Any]:
        cpu = lambda sd: {k: v.detach().cpu() for k, v in sd.items()}  # noqa: E731
        return {"config": self.config, "model": cpu(self.net.state_dict()), "optimizer": self.opt.state_dict(),
                "discriminator": cpu(self.disc.state_dict()) if self.disc is not None else None,
                "discriminator_optimizer": self.disc_opt.state_dict() if self.disc_opt is not None else None}

    def load_state_dict(self, state: dict[str, Any], lr: float) -> None:
        """Restore weights and optimisers (a discriminator only if both sides have one); --lr wins."""
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.disc is not None and state.get("discriminator") is not None:
            self.disc.load_state_dict(state["discriminator"])
            self.disc_opt.load_state_dict(state["discriminator_optimizer"])
        for opt in filter(None, (self.opt, self.disc_opt)):
            for group in opt.param_groups:
                group["lr"] = lr

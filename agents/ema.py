"""Exponential moving average of a policy's weights, the evaluation weights of Diffusion Policy.

Diffusion policies sampled from the raw weights of one late step wander between checkpoints; the
average over the last few thousand steps is much steadier in closed loop. The decay warms up as
`1 - (1 + step / inv_gamma) ** -power` (capped at `max_decay`), so early averages forget the random
initialisation quickly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class EMA:
    """Shadow copies of a module's floating-point parameters and buffers, updated after each optimizer step."""

    def __init__(self, module: nn.Module, power: float = 0.75, max_decay: float = 0.9999, inv_gamma: float = 1.0) -> None:
        if not 0.0 <= max_decay < 1.0:
            raise ValueError(f"EMA max_decay must be in [0, 1), got {max_decay}")
        self.power, self.max_decay, self.inv_gamma = power, max_decay, inv_gamma
        self.steps = 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}

    def decay(self) -> float:
        """Decay used by the next update (0 on the first, so the average starts at the weights)."""
        if self.steps == 0:
            return 0.0
        return min(self.max_decay, max(0.0, 1.0 - (1.0 + self.steps / self.inv_gamma) ** -self.power))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        d = self.decay()
        current = module.state_dict()
        keys = list(self.shadow)
        avg = [self.shadow[k] for k in keys]
        new = [current[k].detach() for k in keys]
        torch._foreach_lerp_(avg, new, 1.0 - d)
        self.steps += 1

    @contextlib.contextmanager
    def applied(self, module: nn.Module) -> Iterator[None]:
        """Temporarily load the averaged weights into `module` (to save or evaluate them)."""
        saved = {k: v.detach().clone() for k, v in module.state_dict().items() if k in self.shadow}
        module.load_state_dict(self.shadow, strict=False)
        try:
            yield
        finally:
            module.load_state_dict(saved, strict=False)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "shadow": {k: v.cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)

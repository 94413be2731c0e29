"""The optimizer (fused AdamW) and learning-rate schedule (constant, or cosine with warmup) of a
training run, shared by the offline and online loops."""

from __future__ import annotations

import math

import torch

from twinarm.agents.policy import Policy
from twinarm.agents.train_config import TrainConfig


def make_scheduler(tc: TrainConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    kind = tc.lr_schedule or ("cosine" if tc.policy == "diffusion" else "constant")
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    if kind != "cosine":
        raise ValueError(f"lr_schedule must be constant or cosine, got {kind!r}")
    warm, total = tc.lr_warmup_steps, max(tc.steps, 1)

    def factor(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, total - warm))))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def make_optimizer(policy: Policy) -> torch.optim.Optimizer:
    cfg = policy.config
    # The fused (single-kernel) AdamW: one pass over each parameter instead of a chain of foreach ops.
    return torch.optim.AdamW(
        policy.get_optim_params(), lr=cfg.optimizer_lr, weight_decay=cfg.optimizer_weight_decay, fused=True
    )

"""The optimizer (fused AdamW) and learning-rate schedule (constant, or cosine with warmup) of a
training run, shared by the offline and online loops."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # annotations only: checkpoints.py imports this module, and train_config imports checkpoints
    from twinarm.agents.policy import Policy
    from twinarm.agents.train_config import TrainConfig


def make_scheduler(tc: TrainConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    """The run's LR schedule. Its layout (`schedule`: kind, warmup, --steps) rides in the scheduler's state_dict,
    so that a resume can tell when a cosine schedule is laid out over another --steps (`schedule_change_note`)."""
    kind = tc.lr_schedule or ("cosine" if tc.policy == "diffusion" else "constant")
    if kind == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        sched.schedule = {"kind": kind}  # type: ignore[attr-defined]
        return sched
    if kind != "cosine":
        raise ValueError(f"lr_schedule must be constant or cosine, got {kind!r}")
    warm, total = tc.lr_warmup_steps, max(tc.steps, 1)

    def factor(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, total - warm))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    sched.schedule = {"kind": kind, "warmup_steps": warm, "steps": total}  # type: ignore[attr-defined]
    return sched


def schedule_change_note(saved: dict[str, Any] | None, sched: Any, step: int, lr_before: float) -> str | None:
    """A one-line note when a run resumed at `step` lays its LR schedule out otherwise than the checkpoint's
    (`saved`, None for a checkpoint older than this record) and so changes the LR: a finished cosine run extended
    with a larger --steps climbs back up the cosine. `lr_before`: the LR the checkpoint's last step used (the first
    group's). LeRobot behaves alike; twinarm keeps its maths and says so."""
    ours = getattr(sched, "schedule", None)
    if not saved or not ours or saved == ours or "cosine" not in (saved.get("kind"), ours.get("kind")):
        return None
    lr_now = sched.base_lrs[0] * sched.lr_lambdas[0](step)
    if math.isclose(lr_now, lr_before, rel_tol=1e-6, abs_tol=1e-12):
        return None

    def layout(s: dict[str, Any]) -> str:
        if s.get("kind") != "cosine":
            return str(s.get("kind"))
        both = saved.get("kind") == ours.get("kind")
        warm = f" (warmup {s.get('warmup_steps')})" if both and saved.get("warmup_steps") != ours.get("warmup_steps") else ""
        return f"cosine over --steps {s.get('steps')}{warm}"

    return (f"--resume: the learning-rate schedule was {layout(saved)} and is now {layout(ours)}: at step {step} the "
            f"LR goes from {lr_before:.3g} to {lr_now:.3g} (as in LeRobot; to fine-tune with a fresh schedule instead, "
            "start a new run with --init-from this one)")  # fmt: skip


def make_optimizer(policy: Policy) -> torch.optim.Optimizer:
    cfg = policy.config
    # The fused (single-kernel) AdamW: one pass over each parameter instead of a chain of foreach ops.
    return torch.optim.AdamW(
        policy.get_optim_params(), lr=cfg.optimizer_lr, weight_decay=cfg.optimizer_weight_decay, fused=True
    )

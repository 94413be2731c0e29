"""A run's checkpoints (`checkpoints/<step>/`: the policy to deploy, the state to resume): finding the
last one, saving one, and restoring a run from one for `--resume`."""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twinarm.agents.distributed import dist_info
from twinarm.agents.ema import EMA
from twinarm.agents.policy import CHECKPOINTS_DIR, LAST_NAME, PRETRAINED_DIR, WEIGHTS_NAME, Policy


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / CHECKPOINTS_DIR / f"{step:08d}"


def last_checkpoint(out: Path) -> Path | None:
    ckpts = sorted((out / CHECKPOINTS_DIR).glob("[0-9]*")) if (out / CHECKPOINTS_DIR).is_dir() else []
    done = [c for c in ckpts if (c / "training_state.pt").is_file()]
    return done[-1] if done else None


def save_checkpoint(
    out: Path, step: int, policy: Policy, opt: torch.optim.Optimizer, sched: Any, extra: dict[str, Any], ema: EMA | None = None
) -> Path:
    """`pretrained_model/` holds the weights to deploy (the EMA when kept); `training_state.pt` what resuming needs."""
    d = checkpoint_dir(out, step)
    with ema.applied(policy) if ema is not None else contextlib.nullcontext():
        policy.save_pretrained(d / PRETRAINED_DIR)
    if ema is not None:
        extra = {**extra, "ema": ema.state_dict(), "model": {k: v.cpu() for k, v in policy.state_dict().items()}}
    state = {
        "step": step,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        **extra,
    }
    tmp = d / "training_state.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(d / "training_state.pt")
    point_last(out / CHECKPOINTS_DIR, d.name)
    return d


def point_last(checkpoints: Path, name: str) -> None:
    """`checkpoints/last` -> the step folder `name`: a relative link, as LeRobot's (so `cd last`, and LeRobot's
    `--policy.path=.../checkpoints/last/pretrained_model`, work), swapped in by one rename so a reader never finds
    it missing; a file naming the step where the filesystem has no links (twinarm reads both)."""
    tmp = checkpoints / f".{LAST_NAME}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(name, target_is_directory=True)
    except OSError:
        tmp.write_text(name + "\n")
    os.replace(tmp, checkpoints / LAST_NAME)


def restore_checkpoint(
    ckpt: Path, policy: Policy, opt: torch.optim.Optimizer, sched: Any, ema: EMA | None = None
) -> int:
    from safetensors.torch import load_file

    state = torch.load(ckpt / "training_state.pt", weights_only=False, map_location="cpu")
    if "model" in state:  # pretrained_model/ holds the EMA; the raw weights live here
        policy.load_state_dict(state["model"])
    else:
        policy.load_state_dict(load_file(str(ckpt / PRETRAINED_DIR / WEIGHTS_NAME)))
    if ema is not None:
        if "ema" not in state:
            raise ValueError(f"{ckpt} was trained without EMA; resume with --no-ema or start a new run")
        ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    return int(state["step"])


def say_if_done(start: int, steps: int, out: Path) -> None:
    """A resumed run already at --steps trains nothing: say so (it printed the last checkpoint as if it had)."""
    if start >= steps and dist_info()[0] == 0:
        print(f"--resume: {out} is at step {start} of --steps {steps}: nothing to train (a larger --steps continues)")

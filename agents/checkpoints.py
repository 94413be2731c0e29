"""A run's checkpoints (`checkpoints/<step>/`: the policy to deploy, the state to resume): finding the
last one, saving one, and restoring a run from one for `--resume`."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twinarm.agents.distributed import dist_info
from twinarm.agents.ema import EMA
from twinarm.agents.optimizer import schedule_change_note
from twinarm.agents.policy import (
    CHECKPOINTS_DIR,
    CONFIG_NAME,
    LAST_NAME,
    PRETRAINED_DIR,
    STATS_NAME,
    WEIGHTS_NAME,
    Policy,
    PolicyConfigError,
)

STATE_NAME = "training_state.pt"
#: What torch.load raises on a training_state.pt cut short or overwritten: a zip archive without its central
#: directory (RuntimeError), a pickle that ends early (EOFError) or is no pickle (UnpicklingError).
TORCH_LOAD_ERRORS = (RuntimeError, EOFError, pickle.UnpicklingError)


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / CHECKPOINTS_DIR / f"{step:08d}"


def last_checkpoint(out: Path) -> Path | None:
    ckpts = sorted((out / CHECKPOINTS_DIR).glob("[0-9]*")) if (out / CHECKPOINTS_DIR).is_dir() else []
    done = [c for c in ckpts if (c / STATE_NAME).is_file()]
    return done[-1] if done else None


def is_intact(ckpt: Path) -> bool:
    """Whether every file `--resume` (and deploying) reads from checkpoint `ckpt` loads: the policy's config.json
    and safetensors files and training_state.pt."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    model = ckpt / PRETRAINED_DIR
    try:
        json.loads((model / CONFIG_NAME).read_text())
        load_file(str(model / WEIGHTS_NAME))
        load_file(str(model / STATS_NAME))
        torch.load(ckpt / STATE_NAME, weights_only=False, map_location="cpu")
    except (OSError, ValueError, SafetensorError, *TORCH_LOAD_ERRORS):
        return False
    return True


def damaged_checkpoint(ckpt: Path, path: Path, exc: BaseException) -> PolicyConfigError:
    """The `--resume` error for a file of checkpoint `ckpt` that cannot be read: it names the file, and the newest
    earlier checkpoint that is intact with how to resume from it (a full disk or a failed copy damages one, and
    `last_checkpoint` would find the damaged one again)."""
    earlier = next((c for c in reversed(sorted(ckpt.parent.glob("[0-9]*"))) if c.name < ckpt.name and is_intact(c)),
                   None)  # fmt: skip
    if earlier is not None:
        fix = (f"checkpoint {earlier.name} is intact: move the folder {ckpt} out of {ckpt.parent} (or delete it) and "
               "--resume again to continue from there")  # fmt: skip
    else:
        fix = "no earlier checkpoint of this run is intact: name a new --output-dir to start again"
    reason = str(exc).splitlines()[0].split(". ")[0] if str(exc) else type(exc).__name__  # torch adds a paragraph
    return PolicyConfigError(f"--resume: {path} cannot be read ({reason}); {fix}")


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
        **cuda_rng_state(policy),
        **extra,
    }
    tmp = d / f"{STATE_NAME}.tmp"
    torch.save(state, tmp)
    tmp.replace(d / STATE_NAME)
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


def _cuda_device(policy: Policy) -> torch.device | None:
    """The CUDA device `policy` trains on, None on the CPU."""
    param = next(policy.parameters(), None)
    return param.device if param is not None and param.device.type == "cuda" else None


def cuda_rng_state(policy: Policy) -> dict[str, Any]:
    """The CUDA generators' states when `policy` trains on CUDA (its dropout, VAE samples, diffusion noise and
    TD-MPC's shifts draw from them): every device's, and which one is the policy's. Empty on the CPU."""
    device = _cuda_device(policy)
    if device is None:
        return {}
    return {"cuda_rng": torch.cuda.get_rng_state_all(), "cuda_device": device.index or 0}


def restore_cuda_rng(state: dict[str, Any], policy: Policy) -> None:
    """Set the CUDA generators as `cuda_rng_state` saved them, when `policy` trains on CUDA and the checkpoint was
    trained there (a checkpoint written on the CPU, or before these states were kept, has none: nothing to set).
    The policy's device takes the saved policy device's state, so a rank of a multi-GPU run, or a run resumed on
    another device index, continues the same random stream."""
    device, saved = _cuda_device(policy), state.get("cuda_rng")
    if device is None or not saved:
        return
    if len(saved) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(saved)
    own = int(state.get("cuda_device", 0))
    if own < len(saved):
        torch.cuda.set_rng_state(saved[own], device)


def restore_checkpoint(
    ckpt: Path, policy: Policy, opt: torch.optim.Optimizer, sched: Any, ema: EMA | None = None
) -> int:
    """Restore a run at `ckpt` (weights, EMA, optimizer, LR schedule, RNG states) and return its step. On rank 0
    it says when the LR schedule is laid out anew (`schedule_change_note`). The log rows after that step are
    dropped by the `RunLog` the loop opens with `start=` that step. A file of `ckpt` that cannot be read (cut
    short by a full disk, a failed copy) raises PolicyConfigError naming it and the earlier checkpoint intact."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = torch.load(ckpt / STATE_NAME, weights_only=False, map_location="cpu")
    except TORCH_LOAD_ERRORS as exc:
        raise damaged_checkpoint(ckpt, ckpt / STATE_NAME, exc) from None
    if "model" in state:  # pretrained_model/ holds the EMA; the raw weights live here
        policy.load_state_dict(state["model"])
    else:
        weights = ckpt / PRETRAINED_DIR / WEIGHTS_NAME
        try:
            saved = load_file(str(weights))
        except (SafetensorError, FileNotFoundError) as exc:
            raise damaged_checkpoint(ckpt, weights, exc) from None
        policy.load_state_dict(saved)
    if ema is not None:
        if "ema" not in state:
            raise ValueError(f"{ckpt} was trained without EMA; resume with --no-ema or start a new run")
        ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["optimizer"])
    ours = getattr(sched, "schedule", None)
    sched.load_state_dict(state["scheduler"])  # its state_dict carries the checkpoint's `schedule`: keep this run's
    if ours is not None:
        sched.schedule = ours
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    restore_cuda_rng(state, policy)
    step = int(state["step"])
    if dist_info()[0] == 0:
        note = schedule_change_note(state["scheduler"].get("schedule"), sched, step, opt.param_groups[0]["lr"])
        if note:
            print(note)
    return step


def say_if_done(start: int, steps: int, out: Path) -> None:
    """A resumed run already at --steps trains nothing: say so (it printed the last checkpoint as if it had)."""
    if start >= steps and dist_info()[0] == 0:
        print(f"--resume: {out} is at step {start} of --steps {steps}: nothing to train (a larger --steps continues; "
              "a cosine LR schedule is then laid out over the new --steps, so its LR rises again)")

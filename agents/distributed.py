"""Where a training process runs: its torch device (`--device`) and its place among torchrun's
processes, with the check that data-parallel replicas stay identical."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from twinarm.agents.policy import Policy


def dist_info() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment; (0, 1) for a plain run."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed(device: torch.device) -> tuple[int, int]:
    rank, world = dist_info()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world


class DeviceError(ValueError):
    """A --device this torch cannot run on (no CUDA device, or no such device type)."""


def resolve_device(name: str) -> torch.device:
    """`auto` -> this process's CUDA device (LOCAL_RANK under torchrun) when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"--device {name}: not a torch device; give auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: torch {torch.__version__} sees no CUDA device (auto picks the CPU)")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return device


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def fingerprint(module: nn.Module) -> torch.Tensor:
    """Per-tensor float64 sums of every parameter and buffer: equal across ranks iff replicas agree."""
    tensors = list(module.state_dict().values())
    return torch.stack([t.detach().double().sum() for t in tensors if t.is_floating_point()])


def check_replicas(policy: Policy, out: Path, step: int, rank: int, world: int) -> None:
    """Gather every rank's weight fingerprint; record them in `replica_check.json` and fail on any drift."""
    fp = fingerprint(policy)
    gathered = [torch.empty_like(fp) for _ in range(world)]
    torch.distributed.all_gather(gathered, fp)
    diff = max(float((g - gathered[0]).abs().max()) for g in gathered)
    if rank == 0:
        record = {"step": step, "world_size": world, "max_abs_diff": diff,
                  "fingerprint_sums": [float(g.sum()) for g in gathered]}
        (out / "replica_check.json").write_text(json.dumps(record, indent=2) + "\n")
    if diff != 0.0:
        raise RuntimeError(f"step {step}: data-parallel replicas diverged (max fingerprint difference {diff})")

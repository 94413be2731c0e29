"""Mixed precision for training and inference: `float32` (the default) or `bf16` (torch autocast).

Under `bf16` the matmuls and convolutions run in bfloat16 and the ops autocast keeps in float32 (losses; on
GPUs also norms and softmax) stay float32, as LeRobot's `use_amp` does; the weights and optimizer state stay
float32. It pays on hardware with native bf16 arithmetic where the arithmetic is what takes the time (x86 CPUs
with AVX512-BF16 or AMX, where a GEMM's rate roughly doubles; GPUs presumably at batches that keep them busy, not
measured here) and is refused elsewhere, where it would only be slower. On an H100 at batch 8 / 1 these policies are bound by kernel launches and bf16
was no quicker than float32 with TF32 (benchmarks/policy_speed.md).
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("float32", "bf16")


def check_precision(precision: str, device: torch.device | str) -> None:
    """Raise ValueError naming the problem when `precision` cannot run on `device`."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "float32":
        return
    if device.type == "cuda":
        if not torch.cuda.is_bf16_supported():
            raise ValueError(f"precision bf16: the GPU {torch.cuda.get_device_name(device)} has no bf16 arithmetic")
    elif device.type == "cpu":
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            raise ValueError("precision bf16: this CPU has no native bf16 arithmetic (AVX512-BF16 or AMX); "
                             "bf16 would run slower than float32 here")
    else:
        raise ValueError(f"precision bf16: not supported on device {device}")


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager[object]:
    """The context a forward pass (training) or a policy call (inference) runs under for `precision`."""
    if precision == "float32":
        return contextlib.nullcontext()
    check_precision(precision, device)
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def cpu_compute_dtype() -> torch.dtype:
    """The dtype the CPU's matmuls run in at this point: bfloat16 inside a CPU bf16 autocast, else float32.
    Packed inference paths (`agents.packed`, the packed backbone) pack their weights in it."""
    if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
        return torch.bfloat16
    return torch.float32

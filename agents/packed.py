"""Policy calls on packed weights: large `F.linear` (and plain 1-D convolution) weights re-laid-out once for a
faster kernel and reused until the weights change. Two users: `agents.int8` (fbgemm's int8 matmul) and float32
inference on CPU (`float32_packed`: oneDNN's float32 matmul on its blocked layout, ACT's chunk ~10 % faster
than MKL's GEMM on the plain weights here).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from twinarm.agents.layers import (
    PACKED_LINEAR,
    conv1d_rows,
    pack_linear_weight,
    packed_linear,
    tap_major,
    weights_key,
)
from twinarm.agents.precision import cpu_compute_dtype

#: Float32 matmuls whose weight has fewer entries run unpacked: each packed weight is a copy, and ACT's gain
#: (measured with this threshold) comes from its 512-wide projections and feed-forward layers.
FLOAT32_MIN_WEIGHT = 256 * 256


class PackedLinears:
    """Packed weights, one per distinct weight view (a packed q/k/v slice is its own view), rebuilt when the
    owner's weights change. `pack(weight, bias, rows)` makes one, `apply(rows, packed, bias)` multiplies."""

    def __init__(
        self,
        owner: nn.Module,
        pack: Callable[[Tensor, Tensor | None, int], Any],
        apply: Callable[[Tensor, Any, Tensor | None], Tensor],
        min_weight: int,
        optimizer_steps: bool,
        follow_autocast: bool = False,
    ) -> None:
        self.owner = owner
        self.pack, self.apply = pack, apply
        self.min_weight = min_weight
        self.optimizer_steps = optimizer_steps  # see layers.weights_key
        self.key: tuple[int, ...] = ()
        self.packed: dict[tuple[Any, ...], Any] = {}
        self.active = threading.local()  # set while this thread runs the owner under a PackedMode
        self.checked = False  # weights checked since the current policy call began
        #: Pack in the CPU's compute dtype (bf16 inside a bf16 autocast, `agents.precision`) rather than always
        #: float32 (int8's packs take float32 weights for their own quantizer).
        self.follow_autocast = follow_autocast

    def check(self) -> None:
        key = weights_key(self.owner, optimizer_steps=self.optimizer_steps)
        if key != self.key:
            self.packed.clear()
            self.key = key

    def dtype(self) -> torch.dtype:
        """The dtype weights are packed in and inputs cast to, read at each call (autocast is per thread)."""
        return cpu_compute_dtype() if self.follow_autocast else torch.float32

    def takes(self, x: Tensor, weight: Tensor) -> bool:
        """Whether a matmul with this input and weight runs packed: float32 weights on CPU, large enough, and
        an input in the matmul's compute dtype (float32, or bf16 under a bf16 autocast, `agents.precision`)."""
        return (
            x.device.type == "cpu"
            and weight.dtype == torch.float32
            and x.dtype in (torch.float32, self.dtype())
            and weight.numel() >= self.min_weight
            and x.numel() > 0
        )

    def linear(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor | None:
        """x W^T + b on the packed weight, or None when this call should run as it is. A 3-D weight is a 1-D
        convolution's (C_out, C_in, k), multiplied as `tap_major(weight)` (x: `conv1d_rows` rows)."""
        if not self.takes(x, weight):
            return None
        if not self.checked:  # once per policy call that reaches a matmul (not on a queued action's pop)
            self.check()
            self.checked = True
        dtype = self.dtype()
        rows = x.reshape(-1, x.shape[-1]).to(dtype).contiguous()
        k = (weight.data_ptr(), *weight.shape, weight.stride(), None if bias is None else bias.data_ptr(), dtype)
        packed = self.packed.get(k)
        if packed is None:
            w = (tap_major(weight) if weight.dim() == 3 else weight).to(dtype)
            b = None if bias is None else bias.to(dtype)
            packed = self.packed[k] = (self.pack(w, b, rows.shape[0]), b)
        return self.apply(rows, *packed).view(*x.shape[:-1], weight.shape[0])

    def conv1d(
        self, x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
        dilation: Any = 1, groups: int = 1,
    ) -> Tensor | None:  # fmt: skip
        """A large zero-padded, ungrouped, undilated 1-D convolution as im2col + packed matmul, or None."""
        pad, step, dil = (v[0] if isinstance(v, tuple | list) else v for v in (padding, stride, dilation))
        if groups != 1 or dil != 1 or isinstance(pad, str) or x.dim() != 3 or not self.takes(x, weight):
            return None
        rows, out_len = conv1d_rows(x, weight.shape[-1], step, pad)
        out = self.linear(rows, weight, bias)
        assert out is not None
        return out.view(x.shape[0], out_len, -1).transpose(1, 2)


class PackedMode(TorchFunctionMode):
    """Routes `F.linear` (nn.Linear and the functional calls in the policies' layers) and plain 1-D
    convolutions (as im2col + matmul, Diffusion's U-Net) through `linears`, outside autograd."""

    def __init__(self, linears: PackedLinears) -> None:
        super().__init__()
        self.linears = linears

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: Mapping | None = None) -> Any:
        kwargs = kwargs or {}
        if not torch.is_grad_enabled():
            y = None
            if func is F.linear:
                x, weight = args[0], args[1] if len(args) > 1 else kwargs["weight"]
                y = self.linears.linear(x, weight, args[2] if len(args) > 2 else kwargs.get("bias"))
            elif func is F.conv1d and not kwargs:
                y = self.linears.conv1d(*args)
            if y is not None:
                return y
        return func(*args, **kwargs)


def under_packed(method: Callable[..., Tensor], linears: PackedLinears) -> Callable[..., Tensor]:
    """`method` run under a PackedMode of `linears` (once: a call inside a call adds no second mode)."""

    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Tensor:
        if getattr(linears.active, "on", False):  # select_action calling predict_action_chunk: one mode is enough
            return method(*args, **kwargs)
        linears.checked = False
        linears.active.on = True
        try:
            with PackedMode(linears):
                return method(*args, **kwargs)
        finally:
            linears.active.on = False

    return run


_FLOAT32_PACKS = "_float32_packs"


def float32_packing_applies(x: Tensor) -> bool:
    """Whether work on `x` (an input or a weight) can run on oneDNN-packed float32 weights: float32 on CPU with
    the packed matmul available, outside autograd, and no torch function mode watching (`eval --int8`'s mode
    must see the matmuls it quantizes)."""
    return (
        PACKED_LINEAR
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.overrides._get_current_function_mode_stack()
    )


def float32_packed(policy: nn.Module) -> contextlib.AbstractContextManager[Any]:
    """Context for one inference call of `policy`: its large F.linear (float32) weights on oneDNN-packed copies
    (kept on the policy, rebuilt when its weights change or any optimizer steps, dropped by
    `drop_float32_packs`), in float32, or in bf16 inside a CPU bf16 autocast (`agents.precision`: what
    autocast would compute, without re-casting every weight at every call). A no-op where
    `float32_packing_applies` says no for the policy's weights."""
    param = next(policy.parameters(), None)
    if param is None or not float32_packing_applies(param):
        return contextlib.nullcontext()
    linears = policy.__dict__.get(_FLOAT32_PACKS)
    if linears is None:
        linears = PackedLinears(
            policy,
            pack=lambda w, b, rows: pack_linear_weight(w, rows),
            apply=packed_linear,
            min_weight=FLOAT32_MIN_WEIGHT,
            optimizer_steps=True,
            follow_autocast=True,
        )
        policy.__dict__[_FLOAT32_PACKS] = linears
    linears.checked = False
    return PackedMode(linears)


def drop_float32_packs(policy: nn.Module) -> None:
    """Free `float32_packed`'s copies (training is about to change the weights)."""
    policy.__dict__.pop(_FLOAT32_PACKS, None)


def without_float32_packs(state: dict[str, Any]) -> dict[str, Any]:
    """A policy's `__getstate__` without the packed copies (oneDNN tensors neither copy nor pickle)."""
    return {k: v for k, v in state.items() if k != _FLOAT32_PACKS}

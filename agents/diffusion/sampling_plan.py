"""Sampling without per-step repeats: every residual block's FiLM terms for all denoising steps in one matmul
and, for float32 on CPU, the U-Net's convolutions as im2col + oneDNN matmuls on weights packed once.

Sampling runs the same U-Net ten (DDIM) to a hundred (DDPM) times at batch 1, where each 1-D convolution is
a few-row matmul against a large weight (2048 x 10240 at the widest): ATen's GEMM on the plain weight runs
those at half the CPU's float32 peak, oneDNN's plain convolution re-lays its weight out on every call. The
same values to float32 rounding; training keeps the modules.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from twinarm.agents.layers import (
    conv1d_rows,
    mish,
    pack_linear_weight,
    packed_linear,
    tap_major,
    weights_key,
)


class SamplingRun:
    """One sampling call: every residual block's FiLM terms for all its steps, the step in progress, and its
    plan's convolutions (calls of their own, so concurrent sampling of one policy shares only the weights)."""

    def __init__(self, plan: SamplingPlan, films: dict[nn.Module, Tensor]) -> None:
        self.pack = plan.pack
        self._films = films  # per residual block: (steps, B, C_film)
        self.step = 0
        self.conv = plan.conv
        self.mish = plan.mish

    def film(self, block: nn.Module) -> Tensor:
        """Block `block`'s FiLM terms (B, C_film, 1) at the current step."""
        return self._films[block][self.step][..., None]


class SamplingPlan:
    """With `pack`, packed weights of one U-Net (for the weights it was built on: `key`); `start` begins a
    sampling call."""

    def __init__(self, unet: nn.Module, pack: bool, dtype: torch.dtype = torch.float32) -> None:
        self.pack = pack
        self.dtype = dtype  # of the packed weights and the rows multiplied by them (bf16 under a bf16 autocast)
        self.key = weights_key(unet) if pack else ()
        self._packed: dict[nn.Module, Tensor] = {}  # per convolution, packed on its first call

    def start(self, blocks: list[nn.Module], cond: Tensor) -> SamplingRun:
        """A sampling call over cond (steps, B, D), the U-Net condition at every denoising step: each block's
        `cond` layer runs once over all of them (one pass over its weight instead of one per step)."""
        steps, b = cond.shape[:2]
        flat = cond.reshape(steps * b, -1)
        return SamplingRun(self, {blk: blk.cond(flat).view(steps, b, -1) for blk in blocks})

    # ----- activation ----------------------------------------------------------------------------------
    @staticmethod
    def mish(x: Tensor) -> Tensor:
        """Mish for the U-Net's blocks: `layers.mish` on CPU (faster than ATen's kernel at every size), ATen's
        kernel elsewhere."""
        return mish(x) if x.device.type == "cpu" else F.mish(x)

    # ----- convolutions -------------------------------------------------------------------------------
    def conv(self, module: nn.Module, x: Tensor) -> Tensor:
        """module(x) on packed weights (a `pack` plan) for the U-Net's Conv1d / ConvTranspose1d layers (zero
        padding, no groups or dilation); other layers run as modules."""
        if isinstance(module, nn.Conv1d) and _plain(module):
            return self._conv1d(module, x)
        if isinstance(module, nn.ConvTranspose1d) and _plain(module) and module.output_padding == (0,):
            return self._conv_transpose1d(module, x)
        return module(x)

    def _weight(self, module: nn.Module, matrix: Callable[[], Tensor], rows: int) -> Tensor:
        """`module`'s packed weight, packed from `matrix()` (its weight as an (out, in) matrix) on first use."""
        packed = self._packed.get(module)
        if packed is None:
            packed = self._packed[module] = pack_linear_weight(matrix().to(self.dtype), rows)
        return packed

    def _conv1d(self, conv: nn.Conv1d, x: Tensor) -> Tensor:
        """Tap-major im2col rows (`layers.conv1d_rows`) times the packed tap-major weight."""
        rows, out_len = conv1d_rows(x.to(self.dtype), conv.kernel_size[0], conv.stride[0], conv.padding[0])
        packed = self._weight(conv, lambda: tap_major(conv.weight), rows.shape[0])
        return packed_linear(rows, packed, conv.bias).view(x.shape[0], out_len, -1).transpose(1, 2)

    def _conv_transpose1d(self, conv: nn.ConvTranspose1d, x: Tensor) -> Tensor:
        """One matmul to every tap's contribution (B, L, k, C_out), then overlap-add with the stride."""
        c_in, c_out, k = conv.weight.shape
        stride, pad = conv.stride[0], conv.padding[0]
        b, _, length = x.shape
        rows = x.transpose(1, 2).reshape(b * length, c_in).to(self.dtype).contiguous()
        packed = self._weight(conv, lambda: conv.weight.permute(2, 1, 0).reshape(k * c_out, c_in), rows.shape[0])
        taps = packed_linear(rows, packed, None).view(b, length, k, c_out)
        full = x.new_zeros(b, (length - 1) * stride + k, c_out)
        for j in range(k):
            full[:, j : j + (length - 1) * stride + 1 : stride] += taps[:, :, j]
        out = full[:, pad : full.shape[1] - pad]
        if conv.bias is not None:
            out = out + conv.bias
        return out.transpose(1, 2)


def _plain(conv: nn.Conv1d | nn.ConvTranspose1d) -> bool:
    """Zero-padded, ungrouped, undilated: what the packed paths compute."""
    return (
        conv.groups == 1
        and conv.dilation == (1,)
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
    )

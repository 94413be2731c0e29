"""Float32 sampling on CPU without per-call weight work: the U-Net's convolutions as im2col + oneDNN matmuls
on weights packed once, and every residual block's FiLM terms for all denoising steps in one matmul.

Sampling runs the same U-Net ten (DDIM) to a hundred (DDPM) times at batch 1, where each 1-D convolution is
a few-row matmul against a large weight (2048 x 10240 at the widest): ATen's GEMM on the plain weight runs
those at half the CPU's float32 peak, oneDNN's plain convolution re-lays its weight out on every call. The
same values to float32 rounding; training and other devices keep the modules.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from twinarm.agents.layers import PACKED_LINEAR, mish, pack_linear_weight, packed_linear, weights_key


def plan_applies(x: Tensor) -> bool:
    """Whether sampling on `x` can use a plan: float32 on CPU with oneDNN's packed matmul, outside autograd,
    and no torch function mode watching (`agents.int8` reroutes F.linear / F.conv1d through one)."""
    return (
        PACKED_LINEAR
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.overrides._get_current_function_mode_stack()
    )


class SamplingPlan:
    """Packed weights of one U-Net (for the weights it was built on: `key`) and the FiLM terms of the
    sampling call in progress."""

    def __init__(self, unet: nn.Module) -> None:
        self.key = weights_key(unet)
        self._packed: dict[nn.Module, Tensor] = {}  # per convolution, packed on its first call
        self._films: dict[nn.Module, Tensor] = {}  # per residual block: (steps, B, C_film)
        self.step = 0

    # ----- FiLM ---------------------------------------------------------------------------------------
    def condition(self, blocks: list[nn.Module], cond: Tensor) -> None:
        """cond (steps, B, D): the U-Net condition at every denoising step; each block's `cond` layer runs
        once over all of them (one pass over its weight instead of one per step)."""
        steps, b = cond.shape[:2]
        flat = cond.reshape(steps * b, -1)
        self._films = {blk: blk.cond(flat).view(steps, b, -1) for blk in blocks}

    def film(self, block: nn.Module) -> Tensor:
        """Block `block`'s FiLM terms (B, C_film, 1) at the current step."""
        return self._films[block][self.step][..., None]

    # ----- activation ----------------------------------------------------------------------------------
    @staticmethod
    def mish(x: Tensor) -> Tensor:
        """Mish for the U-Net's blocks: `layers.mish` on batch-1-sized maps, ATen's threaded kernel on large."""
        return F.mish(x) if x.numel() >= 100_000 else mish(x)

    # ----- convolutions -------------------------------------------------------------------------------
    def conv(self, module: nn.Module, x: Tensor) -> Tensor:
        """module(x) for the U-Net's Conv1d / ConvTranspose1d layers (zero padding, no groups or dilation)."""
        if isinstance(module, nn.Conv1d) and _plain(module):
            return self._conv1d(module, x)
        if isinstance(module, nn.ConvTranspose1d) and _plain(module) and module.output_padding == (0,):
            return self._conv_transpose1d(module, x)
        return module(x)

    def _weight(self, module: nn.Module, matrix: Callable[[], Tensor], rows: int) -> Tensor:
        """`module`'s packed weight, packed from `matrix()` (its weight as an (out, in) matrix) on first use."""
        packed = self._packed.get(module)
        if packed is None:
            packed = self._packed[module] = pack_linear_weight(matrix(), rows)
        return packed

    def _conv1d(self, conv: nn.Conv1d, x: Tensor) -> Tensor:
        """im2col over a time-major copy of x: with the weight ordered (C_out, k, C_in), the columns of one
        output step are k consecutive time steps of it, so im2col is a row copy, not a gather."""
        c_out, c_in, k = conv.weight.shape
        stride, pad = conv.stride[0], conv.padding[0]
        b, _, length = x.shape
        xt = x.transpose(1, 2)  # (B, L, C_in)
        if k == 1 and stride == 1 and pad == 0:
            rows = xt.reshape(b * length, c_in)
            out_len = length
        else:
            xp = F.pad(xt, (0, 0, pad, pad)).contiguous()  # (B, L + 2 pad, C_in)
            out_len = (length + 2 * pad - k) // stride + 1
            # Overlapping rows: copied here (14 us at the widest layer), oneDNN's own copy of the view took 170.
            window = xp.as_strided((b, out_len, k * c_in), (xp.stride(0), stride * c_in, 1))
            rows = window.reshape(b * out_len, -1).contiguous()
        packed = self._weight(
            conv, lambda: conv.weight.permute(0, 2, 1).reshape(c_out, k * c_in), rows.shape[0]
        )
        return packed_linear(rows, packed, conv.bias).view(b, out_len, c_out).transpose(1, 2)

    def _conv_transpose1d(self, conv: nn.ConvTranspose1d, x: Tensor) -> Tensor:
        """One matmul to every tap's contribution (B, L, k, C_out), then overlap-add with the stride."""
        c_in, c_out, k = conv.weight.shape
        stride, pad = conv.stride[0], conv.padding[0]
        b, _, length = x.shape
        rows = x.transpose(1, 2).reshape(b * length, c_in)
        packed = self._weight(
            conv, lambda: conv.weight.permute(2, 1, 0).reshape(k * c_out, c_in), rows.shape[0]
        )
        taps = packed_linear(rows, packed, None).view(b, length, k, c_out)
        full = x.new_zeros(b, (length - 1) * stride + k, c_out)
        for j in range(k):
            full[:, j : j + (length - 1) * stride + 1 : stride] += taps[:, :, j]
        out = full[:, pad : full.shape[1] - pad]
        if conv.bias is not None:
            out = out + conv.bias
        return out.transpose(1, 2)


def _plain(conv: nn.Conv1d | nn.ConvTranspose1d) -> bool:
    return (
        conv.groups == 1
        and conv.dilation == (1,)
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
    )

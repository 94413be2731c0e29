"""The float32 floor of a policy pass on this CPU: its matmul and convolution FLOPs over the best rate a
large float32 matmul reaches here (MKL's or oneDNN's). No float32 implementation of the same network runs faster, so a target
below the floor can only be met at lower precision (`eval --int8`). Used by `policy_speed.py`, which also takes
the bf16 floor (the same FLOPs at the bf16 matmul rate) for its `--precision bf16` comparison."""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import conv_flop_count, flop_registry

aten = torch.ops.aten
_CONVS = (aten.conv1d, aten.conv2d, aten.convolution, torch.ops.mkldnn._convolution_pointwise)
_TRANSPOSED_CONVS = (aten.conv_transpose1d, aten.conv_transpose2d)
#: layers.packed_linear (Diffusion's sampling plan)
_PACKED_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None)


class FlopCount(TorchDispatchMode):
    """Counts multiply-add FLOPs (2 per multiply-add) of the matmuls, linears, convolutions and attention an
    eager pass dispatches, by kind; elementwise work is not counted (it only raises the floor)."""

    def __init__(self) -> None:
        super().__init__()
        self.flops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's signature)
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = func.overloadpacket
        if op is aten.linear:
            self.flops["linear"] += 2 * out.numel() * args[1].shape[-1]
        elif op is _PACKED_LINEAR:  # a prepacked weight reports its (out, in) shape, like a plain one
            self.flops["linear"] += 2 * out.numel() * args[0].shape[-1]
        elif op in _CONVS or op in _TRANSPOSED_CONVS:
            # oneDNN's fused convolution with a binary post-op (the packed ResNet's residual add) takes the
            # tensor it adds second and its weight third; a packed weight reports its plain shape.
            weight = args[2] if func._overloadname == "binary" else args[1]
            x, w = list(args[0].shape), list(weight.shape)
            self.flops["convolution"] += conv_flop_count(x, w, list(out.shape), transposed=op in _TRANSPOSED_CONVS)
        elif op is aten.scaled_dot_product_attention:
            q, k, v = args[:3]
            self.flops["attention"] += 2 * q.shape[:-1].numel() * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        elif op in flop_registry:  # mm, addmm, bmm, baddbmm, ... as torch's FLOP counter counts them
            self.flops[str(op).removeprefix("aten.")] += flop_registry[op](*args, **kwargs, out_val=out)
        return out

    @property
    def total(self) -> int:
        return sum(self.flops.values())


def count_flops(fn: Callable[[], object]) -> FlopCount:
    """FLOPs of one call of `fn` (run once, eagerly)."""
    with FlopCount() as counter:
        fn()
    return counter


def matmul_peak(dtype: torch.dtype, sizes: tuple[int, ...] = (512, 1024, 2048), repeats: int = 5) -> float:
    """The best matmul rate (FLOP/s) in `dtype` (float32, or bf16 for `policy_speed.py --precision bf16`) of
    square products at the current torch thread count, over the CPU's two GEMMs torch reaches: MKL's (`a @ b`)
    and oneDNN's on a packed weight (what the packed paths run; ~10 % faster than MKL's in float32 on the
    AVX-512 EPYC)."""
    from twinarm.agents.layers import PACKED_LINEAR, pack_linear_weight, packed_linear

    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        kernels: list[Callable[[], object]] = [functools.partial(torch.mm, a, b)]
        if PACKED_LINEAR:
            kernels.append(functools.partial(packed_linear, a, pack_linear_weight(b, n), None))
        with torch.inference_mode():
            for kernel in kernels:
                kernel()  # warm up the kernel and the output allocation
                for _ in range(repeats):
                    t = time.perf_counter()
                    kernel()
                    best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best

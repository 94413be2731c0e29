"""The FLOP counter behind `benchmarks/policy_speed.py`'s float32 floor counts each kind of layer the
policies dispatch, twinarm's fused convolution the same as the plain one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from twinarm.agents.diffusion.sampling_plan import SamplingPlan
from twinarm.agents.layers import PACKED_LINEAR, conv2d_relu, pack_linear_weight, packed_linear

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "float32_floor.py"
_spec = importlib.util.spec_from_file_location("float32_floor", _PATH)
assert _spec is not None and _spec.loader is not None
floor = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(floor)


def test_counts_linear_matmul_attention_and_every_convolution_kind() -> None:
    x = torch.rand(2, 3, 6, 6)
    conv = nn.Conv2d(3, 5, 3)  # 2 images x 4x4 outputs x 5 channels x (3 x 3 x 3) taps
    q = k = v = torch.rand(1, 2, 7, 4)
    w, one_d, up = torch.rand(16, 8), nn.Conv1d(4, 6, 3), nn.ConvTranspose1d(4, 6, 4, 2)
    plan = SamplingPlan(nn.ModuleList((one_d, up)), pack=True) if PACKED_LINEAR else None
    with torch.inference_mode():  # as the policies infer (ops may reach the counter composite or decomposed)
        counts = {
            "linear": floor.count_flops(lambda: nn.Linear(8, 16)(torch.rand(4, 8))).total,
            "bmm": floor.count_flops(lambda: torch.bmm(torch.rand(3, 4, 5), torch.rand(3, 5, 6))).total,
            "conv": floor.count_flops(lambda: conv(x)).total,
            "fused conv": floor.count_flops(lambda: conv2d_relu(x, conv)).total,
            "conv1d": floor.count_flops(lambda: nn.Conv1d(4, 6, 3)(torch.rand(2, 4, 10))).total,
            "transposed": floor.count_flops(lambda: nn.ConvTranspose1d(4, 6, 4, 2)(torch.rand(2, 4, 5))).total,
            "attention": floor.count_flops(lambda: F.scaled_dot_product_attention(q, k, v)).total,
        }
        if PACKED_LINEAR:  # Diffusion's sampling plan: oneDNN matmuls on packed weights
            packed = pack_linear_weight(w, 4)
            counts["packed linear"] = floor.count_flops(lambda: packed_linear(torch.rand(4, 8), packed, None)).total
            counts["planned conv1d"] = floor.count_flops(lambda: plan.conv(one_d, torch.rand(2, 4, 10))).total
            counts["planned transposed"] = floor.count_flops(lambda: plan.conv(up, torch.rand(2, 4, 5))).total
    assert counts["linear"] == 2 * 4 * 16 * 8
    assert counts["bmm"] == 2 * 3 * 4 * 5 * 6
    assert counts["conv"] == counts["fused conv"] == 2 * 2 * 16 * 5 * 27
    assert counts["conv1d"] == 2 * 2 * 8 * 6 * 4 * 3
    assert counts["transposed"] == 2 * 2 * 5 * 6 * 4 * 4  # per input step: all taps
    assert counts["attention"] == 2 * 2 * 7 * 7 * (4 + 4)
    if PACKED_LINEAR:
        assert counts["packed linear"] == counts["linear"]
        assert counts["planned conv1d"] == counts["conv1d"]
        assert counts["planned transposed"] == counts["transposed"]


def test_matmul_peak_is_a_matmul_rate() -> None:
    rate = floor.matmul_peak(torch.float32, sizes=(128,), repeats=2)
    assert 1e8 < rate < 1e14  # FLOP/s: more than a slow interpreter loop, less than any CPU

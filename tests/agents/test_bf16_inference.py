"""bf16 inference (`--precision bf16`, a CPU bf16 autocast): the packed CPU paths (ACT's linears and backbone,
TD-MPC's planning heads, Diffusion's sampling plan) pack their weights in bf16 and give what autocast gives on
the plain modules, to bf16 rounding, and close to float32."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from tests.agents.conftest import synthetic_batch, synthetic_stats, tiny_config
from tests.agents.test_policy_fast_paths import _diffusion, _perturb, _sample, _tdmpc, _Watching
from twinarm.agents.layers import PACKED_LINEAR
from twinarm.agents.registry import make_policy
from twinarm.agents.tdmpc import fused

pytestmark = [
    pytest.mark.skipif(not PACKED_LINEAR, reason="this torch build has no oneDNN packed matmul"),
    pytest.mark.skipif(
        not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no native bf16 arithmetic"
    ),
]


def bf16() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def rel_err(x: Tensor, ref: Tensor) -> float:
    return float((x.float() - ref.float()).norm() / ref.float().norm())


def test_act_chunk_in_bf16_packs_bf16_weights_and_matches_autocast() -> None:
    """Linears and backbone packed in bf16 beside their float32 packs; the chunk is autocast's on the modules."""
    torch.manual_seed(0)
    cfg = tiny_config("act", with_image=True, dim_model=256, dim_feedforward=512, n_heads=2)
    policy = make_policy("act", cfg, synthetic_stats(True)).eval()
    _perturb(policy.model, 0.02)
    batch = {k: v for k, v in synthetic_batch(cfg, n=3).items() if k.startswith("observation.")}
    with bf16():
        chunk = policy.predict_action_chunk(batch)
        with _Watching():  # packed linears stand aside: autocast runs the modules' linears in bf16
            plain = policy.predict_action_chunk(batch)
    chunk32 = policy.predict_action_chunk(batch)
    packs = policy.__dict__["_float32_packs"].packed
    assert {key[-1] for key in packs} == {torch.bfloat16, torch.float32}
    assert {dtype for _, dtype in policy.model.backbone._packed} == {torch.bfloat16, torch.float32}
    assert rel_err(chunk, plain) < 1e-2  # (equal here: the same oneDNN bf16 products)
    assert 0 < rel_err(chunk, chunk32) < 3e-2  # bf16 really ran, and stays close to float32


def test_tdmpc_heads_in_bf16_match_the_float32_heads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each head on its own bf16-packed weights (packs per dtype, kept side by side); without packed matmuls
    the stacked ops run under autocast."""
    policy = _tdmpc()
    heads = fused.PackedHeads(policy.model)
    z, a = torch.rand(37, policy.model.cfg.latent_dim), torch.rand(37, policy.model.cfg.action_dim) * 2 - 1
    with torch.inference_mode():
        with bf16():
            low = heads.step(z, a, with_q=True)
        full = heads.step(z, a, with_q=True)
    assert set(heads._packed2) == {torch.bfloat16, torch.float32}
    z_next, reward, q = low
    assert reward.dtype == q.dtype == torch.float32  # the CEM ranks samples by float32 values
    for x, y in zip(low, full, strict=True):
        assert 0 < rel_err(x, y) < 2e-2
    monkeypatch.setattr(fused, "PACKED_LINEAR", False)  # the stacked ops under autocast (as on a GPU)
    with torch.inference_mode(), bf16():
        stacked = heads.step(z, a, with_q=True)
    for x, y in zip(stacked, full, strict=True):
        assert 0 < rel_err(x, y) < 2e-2


def test_diffusion_sampling_in_bf16_matches_float32() -> None:
    """The sampling plan packs in bf16 under the autocast (a float32 call after it repacks in float32)."""
    policy = _diffusion(noise_scheduler_type="DDIM", num_inference_steps=4)
    with bf16():
        low = _sample(policy, plan=True)
        assert policy.model._plan.dtype == torch.bfloat16
        plain = _sample(policy, plan=False)
    full = _sample(policy, plan=True)
    assert rel_err(low, plain) < 2e-2
    assert 0 < rel_err(low, full) < 2e-2


def test_tdmpc_plans_in_bf16() -> None:
    """A whole CEM plan under the autocast (encoder, heads and prior in bf16): float32 actions of the policy's
    shape inside the action range (min/max +-60 here). bf16 can rank samples differently, so the chosen elite
    need not be float32's; the heads' numbers are checked above."""
    policy = _tdmpc()
    batch = {k: v for k, v in synthetic_batch(policy.config, n=2).items() if k.startswith("observation.")}
    batch = {k: v[:, 0] if v.dim() in (3, 5) else v for k, v in batch.items()}
    with torch.inference_mode(), bf16():
        low = policy.select_action(batch)
    assert low.dtype == torch.float32 and low.shape == (2, policy.config.action_dim)
    assert bool(torch.isfinite(low).all()) and float(low.abs().max()) <= 60 + 1e-3


def test_fused_conv_relu_runs_in_bf16_under_the_autocast() -> None:
    """Outside autograd (TD-MPC's target encodings in training, its plans) the fused conv + ReLU computes
    what autocast computes for conv then ReLU: in bf16, not silently in float32."""
    from twinarm.agents.layers import conv2d_relu

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 32, 7, stride=2)
    x = torch.rand(4, 3, 84, 84)
    with torch.no_grad(), bf16():
        fused_out, ref = conv2d_relu(x, conv), torch.relu(conv(x))
    assert fused_out.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(fused_out, ref)


@pytest.mark.parametrize("norm", ["frozen_batch_norm", "group_norm"])
def test_packed_backbone_in_bf16_is_autocasts_trunk(norm: str) -> None:
    """Both kinds of packed ResNet-18 (folded, and group norms between the convolutions: Diffusion's) pack in
    bf16 under the autocast and give what autocast gives on the modules."""
    from twinarm.agents.backbone import ResNet18

    torch.manual_seed(0)
    net = ResNet18(norm)
    _perturb(net, 0.2)
    net.eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.inference_mode(), bf16():
        packed = net(x)
        plain = (net._fused_trunk() if net.foldable else net.trunk)(x.contiguous(memory_format=torch.channels_last))
    assert packed.dtype == plain.dtype == torch.bfloat16
    assert set(net._packed) == {((2, 3, 64, 96), torch.bfloat16)}
    assert rel_err(packed, plain) < 3e-2  # bf16 roundings in other places (the fused add rounds once, not twice)

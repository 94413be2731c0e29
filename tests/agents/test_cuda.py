"""The policies on a CUDA GPU (skipped where there is none; a lent GPU runs them through
`benchmarks/policy_speed_gpu.sh`): float32 gives the CPU's numbers, a bf16 autocast (`--precision bf16`)
stays close to float32, and bf16 training learns as float32 training does (each policy overfits a tiny dataset)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import Tensor

from tests.agents.conftest import synthetic_batch, synthetic_stats, tiny_config
from tests.agents.test_policies import SAMPLES, STEPS, _loss_at
from tests.agents.test_policy_fast_paths import _diffusion, _perturb, _tdmpc
from twinarm.agents.registry import POLICIES, make_policy
from twinarm.agents.tdmpc import fused

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
GPU = torch.device("cuda")


@pytest.fixture(autouse=True)
def _full_float32() -> Iterator[None]:
    """float32 comparisons with the CPU need float32 products: TF32 off for matmuls and convolutions."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def bf16() -> torch.autocast:
    return torch.autocast("cuda", dtype=torch.bfloat16)


def rel_err(x: Tensor, ref: Tensor) -> float:
    return float((x.float().cpu() - ref.float().cpu()).norm() / ref.float().cpu().norm())


def on_gpu(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.to(GPU) for k, v in batch.items()}


def test_act_chunk_on_the_gpu_is_the_cpus_and_close_in_bf16() -> None:
    torch.manual_seed(0)
    cfg = tiny_config("act", with_image=True, dim_model=256, dim_feedforward=512, n_heads=2)
    policy = make_policy("act", cfg, synthetic_stats(True)).eval()
    _perturb(policy.model, 0.02)
    batch = {k: v for k, v in synthetic_batch(cfg, n=3).items() if k.startswith("observation.")}
    with torch.inference_mode():
        cpu = policy.predict_action_chunk(batch)
        policy.to(GPU)
        full = policy.predict_action_chunk(on_gpu(batch))
        with bf16():
            low = policy.predict_action_chunk(on_gpu(batch))
    assert full.device.type == "cuda" and full.dtype == torch.float32
    assert rel_err(full, cpu) < 1e-4
    assert 0 < rel_err(low, full) < 3e-2  # bf16 really ran, and stays close to float32


def test_tdmpc_heads_on_the_gpu_are_the_cpus_and_close_in_bf16() -> None:
    """The stacked heads (one batched matmul per layer for all seven) off the CPU, and their autocast path."""
    policy = _tdmpc()
    cfg = policy.model.cfg
    z, a = torch.rand(37, cfg.latent_dim), torch.rand(37, cfg.action_dim) * 2 - 1
    with torch.inference_mode():
        cpu = fused.PackedHeads(policy.model).step(z, a, with_q=True)
        heads = fused.PackedHeads(policy.model.to(GPU))
        full = heads.step(z.to(GPU), a.to(GPU), with_q=True)
        with bf16():
            low = heads.step(z.to(GPU), a.to(GPU), with_q=True)
    for x, y in zip(full, cpu, strict=True):
        assert rel_err(x, y) < 1e-4
    assert low[1].dtype == low[2].dtype == torch.float32  # the CEM ranks samples by float32 values
    for x, y in zip(low, full, strict=True):
        assert 0 < rel_err(x, y) < 2e-2


@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_tdmpc_plans_on_the_gpu(precision: str) -> None:
    """A whole CEM plan on the GPU: float32 actions of the policy's shape, on the GPU, inside the action range
    (min/max +-60 here). The GPU draws other random numbers than the CPU: the plans are not compared."""
    policy = _tdmpc().to(GPU)
    batch = {k: v for k, v in synthetic_batch(policy.config, n=2).items() if k.startswith("observation.")}
    batch = on_gpu({k: v[:, 0] if v.dim() in (3, 5) else v for k, v in batch.items()})
    with torch.inference_mode(), (bf16() if precision == "bf16" else torch.autocast("cuda", enabled=False)):
        action = policy.select_action(batch)
    assert action.device.type == "cuda" and action.dtype == torch.float32
    assert action.shape == (2, policy.config.action_dim)
    assert bool(torch.isfinite(action).all()) and float(action.abs().max()) <= 60 + 1e-3


def test_diffusion_unet_on_the_gpu_is_the_cpus_and_sampling_close_in_bf16() -> None:
    policy = _diffusion(noise_scheduler_type="DDIM", num_inference_steps=4)
    cfg = policy.config
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, cfg.horizon, cfg.action_dim, generator=g)
    t = torch.tensor([7, 60])
    batch = synthetic_batch(cfg, n=2)
    with torch.inference_mode():
        cond = policy.model.global_cond(policy.normalize_inputs(batch))
        cpu = policy.model.unet(x, t, cond)
        policy.to(GPU)
        full = policy.model.unet(x.to(GPU), t.to(GPU), cond.to(GPU))
        gpu_batch = policy.normalize_inputs(on_gpu(batch))
        sampled = policy.model.sample(gpu_batch, torch.Generator(GPU).manual_seed(5))
        with bf16():
            low = policy.model.sample(gpu_batch, torch.Generator(GPU).manual_seed(5))
    assert rel_err(full, cpu) < 1e-4
    assert sampled.device.type == "cuda"
    assert 0 < rel_err(low, sampled) < 3e-2


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_each_policy_overfits_in_bf16_on_the_gpu(name: str) -> None:
    """`--precision bf16` training on a GPU: forward passes under the autocast, weights and the optimizer in
    float32; the loss falls 10x on a tiny dataset, as in float32 on the CPU (`test_policies`)."""
    torch.manual_seed(0)
    with_image = name != "diffusion"  # its image encoder makes the noise-prediction loss need more than STEPS
    cfg = tiny_config(name, with_image=with_image)
    policy = make_policy(name, cfg, synthetic_stats(with_image)).to(GPU).train()
    batch = on_gpu(synthetic_batch(cfg, n=SAMPLES[name]))
    with bf16():
        first = _loss_at(policy, batch)
    opt = torch.optim.Adam(policy.get_optim_params(), lr=cfg.optimizer_lr)
    for _ in range(STEPS[name]):
        with bf16():
            loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hasattr(policy, "update_target"):
            policy.update_target()
    with bf16():
        last = _loss_at(policy, batch)
    assert all(p.dtype == torch.float32 for p in policy.parameters())
    assert np.isfinite(last) and last < first / 10, f"{name}: loss {first:.4f} -> {last:.4f}"

"""Diffusion's `state_noise_std`: noise on the normalized robot state in training, nothing at inference."""

from __future__ import annotations

import pytest
import torch

from tests.agents.conftest import synthetic_batch, synthetic_stats, tiny_config
from twinarm.agents.diffusion.diffusion import DiffusionPolicy


def _pair(std: float) -> tuple[DiffusionPolicy, DiffusionPolicy]:
    """Two policies with the same weights, without and with state noise."""
    torch.manual_seed(0)
    plain = DiffusionPolicy(tiny_config("diffusion"), synthetic_stats())
    noisy = DiffusionPolicy(tiny_config("diffusion", state_noise_std=std), synthetic_stats())
    noisy.load_state_dict(plain.state_dict())
    return plain, noisy


def _loss(policy: DiffusionPolicy, batch: dict[str, torch.Tensor], seed: int) -> float:
    torch.manual_seed(seed)
    return policy(batch)[0].item()


def test_training_loss_sees_the_noise_and_stays_seeded() -> None:
    plain, noisy = _pair(0.5)
    batch = synthetic_batch(plain.config)
    assert _loss(noisy, batch, 1) == _loss(noisy, batch, 1)  # the noise comes from the seeded global generator
    assert _loss(noisy, batch, 1) != _loss(plain, batch, 1)
    noisy.eval()  # outside training the state goes in as it is
    assert _loss(noisy, batch, 1) == _loss(plain.eval(), batch, 1)


def test_noise_leaves_the_rest_of_the_batch_alone() -> None:
    _, noisy = _pair(0.5)
    batch = synthetic_batch(noisy.config)
    before = {k: v.clone() for k, v in batch.items()}
    _loss(noisy, batch, 2)
    assert all(torch.equal(batch[k], before[k]) for k in batch)  # the caller's tensors are not modified


def test_inference_is_unchanged() -> None:
    plain, noisy = _pair(0.5)
    obs = {k: v[:2] for k, v in synthetic_batch(plain.config).items() if k.startswith("observation.")}
    a = plain.eval().predict_action_chunk(obs, torch.Generator().manual_seed(3))
    b = noisy.eval().predict_action_chunk(obs, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_negative_std_is_refused() -> None:
    with pytest.raises(ValueError, match="state_noise_std"):
        tiny_config("diffusion", state_noise_std=-0.1).validate()

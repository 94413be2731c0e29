"""`evaluate`'s noise: Diffusion's sampling noise comes from torch's generators seeded with `noise_seed` (default:
the episodes' `seed`), and the caller's random state is given back, so a call repeats in one process and a training
run's random numbers are neither drawn nor read by its periodic evaluation (determinism audit F4, F5)."""

from __future__ import annotations

import torch

from tests.agents.conftest import PICK, synthetic_stats, tiny_config
from twinarm.agents.diffusion.diffusion import DiffusionPolicy
from twinarm.agents.eval import evaluate


def _rewards(policy: DiffusionPolicy, **kwargs: object) -> list[float]:
    return evaluate(policy, PICK, n_episodes=2, n_envs=1, seed=100, max_steps=12, **kwargs).sum_rewards


def test_an_evaluation_repeats_and_leaves_the_callers_random_state_alone() -> None:
    torch.manual_seed(0)
    policy = DiffusionPolicy(tiny_config("diffusion"), synthetic_stats())  # random init: its noise moves the arm
    state = torch.get_rng_state()
    first = _rewards(policy)
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn from the caller's generator
    torch.manual_seed(12345)  # nor read from it
    assert _rewards(policy) == first
    assert _rewards(policy, noise_seed=100) == first  # the default is the episodes' seed
    assert _rewards(policy, noise_seed=7) != first

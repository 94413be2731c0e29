"""Every sim env's scripted expert: deterministic under a seed (randomness only from the env's np_random, so
recordings reproduce) and never outside the env's action space."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from twinarm.envs.experts import expert_prefix
from twinarm.registration import ENV_ENTRIES

STEPS = 50


def _actions(env: gym.Env, seed: int) -> np.ndarray:
    _, actions = expert_prefix(env, seed, STEPS)
    for i, a in enumerate(actions):
        assert env.action_space.contains(a), f"step {i}: {a} outside {env.action_space}"
    return actions


@pytest.mark.parametrize("env_id", [e.sim_id for e in ENV_ENTRIES])
def test_expert_is_deterministic_and_stays_in_the_action_space(env_id: str) -> None:
    env = gym.make(env_id, obs_type="state")
    first = _actions(env, seed=11)
    np.testing.assert_array_equal(first, _actions(env, seed=11))
    assert not np.array_equal(first, _actions(env, seed=12)), "another seed should move the task's objects"
    env.close()

"""Expert demonstrations in SB3's action space: `SB3Wrapper.normalize_action` is `action`'s inverse, and
`make_expert` on the wrapper answers in [-1, 1] (it used to give raw joint targets the wrapper misread: 0 %)."""

from __future__ import annotations

import numpy as np
import pytest

import twinarm  # noqa: F401
from twinarm.agents.sb3 import make_sb3_env
from twinarm.envs.experts import make_expert

PICK = "twinarm/SO101-PickCube-v0"


def test_normalize_action_inverts_action() -> None:
    env = make_sb3_env(PICK, obs_type="state")
    a = np.random.default_rng(0).uniform(-1, 1, env.action_space.shape).astype(np.float32)
    np.testing.assert_allclose(env.normalize_action(env.action(a)), a, atol=1e-5)
    low, high = env.env.action_space.low, env.env.action_space.high
    np.testing.assert_allclose(env.normalize_action(low), -1.0)
    np.testing.assert_allclose(env.normalize_action(high), 1.0)
    assert env.normalize_action(high + 1.0).max() == 1.0  # clipped into the box
    env.close()


@pytest.mark.parametrize("env_id", [PICK, "twinarm/Aloha-TransferCube-v0"])
def test_expert_through_the_sb3_wrapper_succeeds_with_actions_in_its_space(env_id: str) -> None:
    env = make_sb3_env(env_id, obs_type="state")
    expert = make_expert(env)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        action = expert(obs)
        assert env.action_space.contains(action), action
        obs, _, term, trunc, info = env.step(action)
        done = term or trunc
    assert info["is_success"]
    env.close()

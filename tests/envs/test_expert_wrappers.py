"""A scripted expert answers in the action space of the env it was made for and refuses what it cannot answer
through (an action wrapper that does not say how)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import RescaleAction

import twinarm  # noqa: F401
from twinarm.envs.experts import make_expert
from twinarm.envs.lerobot_view import make_lerobot_view

PICK = "twinarm/SO101-PickCube-v0"


def _episode(env: gym.Env, expert, seed: int, reset_expert: bool = False) -> tuple[bool, list[np.ndarray]]:
    obs, _ = env.reset(seed=seed)
    if reset_expert:
        expert.reset()
    actions, done = [], False
    while not done:
        actions.append(expert(obs))
        obs, _, term, trunc, info = env.step(actions[-1])
        done = term or trunc
    return bool(info["is_success"]), actions


def test_an_action_wrapper_without_an_inverse_is_refused_by_name() -> None:
    """Through RescaleAction the expert's joint targets were read as [-1, 1] actions: 0 % success, silently."""
    env = RescaleAction(gym.make(PICK, obs_type="state"), np.float32(-1.0), np.float32(1.0))
    with pytest.raises(ValueError, match=r"RescaleAction changes the action space .* no inverse_action\(action\).*"
                                         r"make_expert\(env.unwrapped\)"):
        make_expert(env)
    make_expert(env.unwrapped)  # the way out the message names


def test_expert_through_the_lerobot_view_answers_in_lerobot_units() -> None:
    view = make_lerobot_view(PICK, obs_type="state")
    expert = make_expert(view)
    ok, actions = _episode(view, expert, seed=0)
    assert ok and all(view.action_space.contains(a) for a in actions)
    assert max(a[-1] for a in actions) > 1.0  # the gripper in 0..100, not the raw 0..1

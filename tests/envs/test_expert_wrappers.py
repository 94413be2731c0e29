"""A scripted expert answers in the action space of the env it was made for, refuses what it cannot answer
through (an unknown action wrapper, a vector env), and notices a new episode without being told."""

from __future__ import annotations

import pickle

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


def test_vector_env_is_refused_with_the_way_out() -> None:
    """It used to say 'no scripted expert for task None'."""
    vec = gym.make_vec(PICK, 2, vectorization_mode="sync", obs_type="state")
    with pytest.raises(ValueError, match=r"SyncVectorEnv is a vector env.*make_expert\(e\) for e in vec.envs.*worker"):
        make_expert(vec)
    assert [type(make_expert(e)).__name__ for e in vec.envs] == ["ScriptedExpert"] * 2
    vec.close()


def test_a_reused_expert_replans_after_each_reset_by_itself() -> None:
    """Kept across episodes without expert.reset(), it used to follow episode 1's plan and fail episode 2."""
    env = gym.make(PICK, obs_type="state")
    reused = make_expert(env)
    first = _episode(env, reused, seed=0)
    second = _episode(env, reused, seed=1)
    assert first[0] and second[0]
    fresh_env = gym.make(PICK, obs_type="state")
    fresh = _episode(fresh_env, make_expert(fresh_env), seed=1)
    np.testing.assert_array_equal(np.array(second[1]), np.array(fresh[1]))  # the same plan a new expert makes
    again = _episode(env, reused, seed=1, reset_expert=True)  # explicit reset() still works, and changes nothing
    np.testing.assert_array_equal(np.array(again[1]), np.array(fresh[1]))
    env.close()
    fresh_env.close()


def test_episode_count_counts_resets_and_survives_pickling() -> None:
    env = gym.make(PICK, obs_type="state").unwrapped
    assert env.episode_count == 0
    env.reset(seed=0)
    env.reset(seed=1)
    assert env.episode_count == 2 and pickle.loads(pickle.dumps(env)).episode_count == 2

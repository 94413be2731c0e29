"""Every twinarm env works with Stable-Baselines3; SAC briefly trained on state-obs Reach improves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import twinarm  # noqa: F401
from twinarm.agents.sb3 import make_sb3_env
from twinarm.registration import sim_ids

SO101_IDS = [i for i in sim_ids() if "/SO101-" in i]


@pytest.mark.parametrize("env_id", SO101_IDS)
def test_sb3_env_checker_accepts_state_envs(env_id: str) -> None:
    env = make_sb3_env(env_id, obs_type="state")
    check_env(env, warn=True)
    assert env.action_space.low.min() == -1.0 and env.action_space.high.max() == 1.0
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()


def test_sb3_env_checker_accepts_pixel_envs() -> None:
    env = make_sb3_env("twinarm/SO101-PickCube-v0", obs_type="pixels_agent_pos", image_size=(48, 64))
    check_env(env, warn=True)
    obs, _ = env.reset(seed=0)
    assert obs["pixels_front"].shape == (48, 64, 3) and obs["pixels_front"].dtype == np.uint8
    env.close()


def test_actions_map_onto_joint_limits() -> None:
    env = make_sb3_env("twinarm/SO101-Reach-v0", obs_type="state")
    base = env.unwrapped.action_space
    np.testing.assert_allclose(env.action(-np.ones(base.shape)), base.low, rtol=1e-6)
    np.testing.assert_allclose(env.action(np.ones(base.shape)), base.high, rtol=1e-6)
    np.testing.assert_allclose(env.action(np.full(base.shape, 5.0)), base.high, rtol=1e-6)
    env.close()


def _mean_return(model: SAC, seed: int) -> float:
    env = Monitor(make_sb3_env("twinarm/SO101-Reach-v0", obs_type="state", max_episode_steps=50))
    env.reset(seed=seed)
    mean, _ = evaluate_policy(model, env, n_eval_episodes=6, deterministic=True)
    env.close()
    return float(mean)


def test_sac_improves_on_reach() -> None:
    torch.set_num_threads(1)
    env = make_sb3_env("twinarm/SO101-Reach-v0", obs_type="state", max_episode_steps=50)
    model = SAC(
        "MlpPolicy", env, learning_starts=300, batch_size=64, learning_rate=1e-3, seed=0,
        policy_kwargs={"net_arch": [64, 64]}, device="cpu", verbose=0,
    )  # fmt: skip
    before = _mean_return(model, seed=123)
    model.learn(2000)
    after = _mean_return(model, seed=123)
    env.close()
    assert after > before + 2.0, f"mean return {before:.2f} -> {after:.2f}"

"""SO-101: the gripper really grasps, and the scripted experts solve every task on a CI-sized sample."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401
from twinarm.envs.experts import expert_success_rate, make_expert

CI_EPISODES = 20




@pytest.mark.parametrize("task", ["Reach", "PickCube", "PickPlace", "StackCube"])
def test_expert_success_on_ci_sample(task: str) -> None:
    rate = expert_success_rate(f"twinarm/SO101-{task}-v0", CI_EPISODES, first_seed=1000)
    assert rate >= 0.9, f"{task}: expert success {rate:.0%} < 90%"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gripper_closes_on_cube_lifts_5cm_and_holds_2s(seed: int) -> None:
    """Friction alone must hold a 2.5 cm cube: pinch it, lift >= 5 cm, keep it up for 2 s."""
    env = gym.make("twinarm/SO101-PickCube-v0", obs_type="state", max_episode_steps=400)
    base = env.unwrapped
    task = base.task
    assert 2 * task.cube_half == pytest.approx(0.025)
    expert = make_expert(env)
    obs, _ = env.reset(seed=seed)
    hold_steps = int(2.0 * base.spec_arm.control_hz)
    lifted_for = 0
    for _ in range(400):
        obs, *_ = env.step(expert(obs))
        up = task.cube_height(base.physics) >= 0.05 and task.grasped(base.physics)
        lifted_for = lifted_for + 1 if up else 0
        if lifted_for >= hold_steps:
            break
    assert lifted_for >= hold_steps, f"cube held aloft only {lifted_for} of {hold_steps} steps"
    # The cube hangs between the pads, not resting on a finger: no contact with the table.
    assert obs["environment_state"][2] > task.cube_half + 0.05 - 1e-3


def test_open_gripper_drops_the_cube() -> None:
    """The hold comes from the grasp: opening the jaws lets the cube fall back to the table."""
    env = gym.make("twinarm/SO101-PickCube-v0", obs_type="state")
    base = env.unwrapped
    expert = make_expert(env)
    obs, _ = env.reset(seed=4)
    for _ in range(110):
        obs, *_ = env.step(expert(obs))
    assert base.task.cube_height(base.physics) >= 0.05
    action = expert(obs)
    action[-1] = 1.0
    for _ in range(40):
        obs, *_ = env.step(action)
    assert base.task.cube_height(base.physics) < 0.01


def test_make_expert_rejects_unknown_tasks() -> None:
    class Dummy(gym.Env):
        pass

    with pytest.raises(ValueError, match="no scripted expert"):
        make_expert(Dummy())


def test_pick_place_resets_always_separate_cube_and_plate() -> None:
    from twinarm.envs.tasks.pick_place import MIN_SEPARATION

    env = gym.make("twinarm/SO101-PickPlace-v0", obs_type="state")
    for seed in range(300):
        state = env.reset(seed=seed)[0]["environment_state"]
        assert np.linalg.norm(state[:2] - state[7:9]) >= MIN_SEPARATION

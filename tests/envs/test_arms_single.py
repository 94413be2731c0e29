"""SO-100 and Koch v1.1: the gripper really grasps, and the scripted experts solve every task on a CI-sized sample.

(The SO-101 has the same checks in test_so101_experts.py; the step-response check of every arm's servos
lives in test_arms_actuators.py.)
"""

from __future__ import annotations

import gymnasium as gym
import pytest

import twinarm  # noqa: F401
from twinarm.envs.experts import expert_success_rate, make_expert

ARM_TOKENS = ["SO100", "Koch"]
CI_EPISODES = 10




@pytest.mark.parametrize("arm", ARM_TOKENS)
@pytest.mark.parametrize("task", ["Reach", "PickCube", "PickPlace", "StackCube"])
def test_expert_success_on_ci_sample(arm: str, task: str) -> None:
    rate = expert_success_rate(f"twinarm/{arm}-{task}-v0", CI_EPISODES, first_seed=1000)
    assert rate >= 0.9, f"{arm}-{task}: expert success {rate:.0%} < 90%"


@pytest.mark.parametrize("arm", ARM_TOKENS)
def test_gripper_closes_on_cube_lifts_5cm_and_holds_2s(arm: str) -> None:
    """Friction alone must hold a 2.5 cm cube: pinch it, lift >= 5 cm, keep it up for 2 s."""
    env = gym.make(f"twinarm/{arm}-PickCube-v0", obs_type="state", max_episode_steps=400)
    base = env.unwrapped
    task = base.task
    assert 0.02 <= 2 * task.cube_half <= 0.03
    expert = make_expert(env)
    obs, _ = env.reset(seed=3)
    hold_steps = int(2.0 * base.spec_arm.control_hz)
    lifted_for = 0
    for _ in range(400):
        obs, *_ = env.step(expert(obs))
        up = task.cube_height(base.physics) >= 0.05 and task.grasped(base.physics)
        lifted_for = lifted_for + 1 if up else 0
        if lifted_for >= hold_steps:
            break
    assert lifted_for >= hold_steps, f"cube held aloft only {lifted_for} of {hold_steps} steps"
    assert obs["environment_state"][2] > task.cube_half + 0.05 - 1e-3
    # The hold comes from the grasp: opening the jaws drops the cube back onto the table.
    action = expert(obs)
    action[-1] = 1.0
    for _ in range(45):
        obs, *_ = env.step(action)
    assert task.cube_height(base.physics) < 0.01

"""What `step` promises beyond the Gymnasium battery: observations the caller may keep, every action form
accepted alike, the limits clamped, and the per-step fast paths equal to the array methods they stand in for."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401
from twinarm.envs.physics import ArmPhysics

IDS = [
    "twinarm/SO101-PickCube-v0",
    "twinarm/SO101-PickPlace-v0",
    "twinarm/SO101-Reach-v0",
    "twinarm/Aloha-Insertion-v0",
]


@pytest.mark.parametrize("env_id", IDS)
def test_observations_are_new_arrays_the_caller_can_keep(env_id: str) -> None:
    env = gym.make(env_id, obs_type="state")
    data = env.unwrapped.physics.data
    kept = [env.reset(seed=0)[0]]
    env.action_space.seed(0)
    for _ in range(5):
        kept.append(env.step(env.action_space.sample())[0])
    copies = [{k: v.copy() for k, v in obs.items()} for obs in kept]
    for _ in range(5):
        env.step(env.action_space.sample())
    for obs, copy in zip(kept, copies, strict=True):
        for key, value in obs.items():
            np.testing.assert_array_equal(value, copy[key])
            assert value.dtype == np.float32
            for field in (data.qpos, data.mocap_pos, data.xpos, data.site_xpos):
                assert not np.shares_memory(value, field), key
    env.close()


def _steps(env: gym.Env, action, n: int = 3) -> list:
    env.reset(seed=3)
    return [env.step(action) for _ in range(n)]


def _assert_same(a: list, b: list) -> None:
    for (o1, r1, *_, i1), (o2, r2, *_, i2) in zip(a, b, strict=True):
        for k in o1:
            np.testing.assert_array_equal(o1[k], o2[k])
        assert r1 == r2 and i1 == i2


@pytest.mark.parametrize("env_id", ["twinarm/SO101-PickCube-v0", "twinarm/Aloha-TransferCube-v0"])
def test_every_action_form_steps_alike_and_limits_clamp(env_id: str) -> None:
    env = gym.make(env_id, obs_type="state")
    spec = env.unwrapped.spec_arm
    # A target that float32 holds exactly, so every form below means the very same numbers.
    target = (0.3 * spec.lower + 0.7 * spec.upper).astype(np.float32).astype(np.float64)
    reference = _steps(env, target)
    for action in (target.astype(np.float32), target.tolist(), tuple(target), list(map(np.float32, target))):
        _assert_same(reference, _steps(env, action))
    corner = np.where(np.arange(spec.dof) % 2 == 0, spec.upper, spec.lower)
    beyond = corner + np.where(np.arange(spec.dof) % 2 == 0, 0.5, -0.5)
    _assert_same(_steps(env, corner), _steps(env, beyond))
    env.close()


def test_bad_actions_are_refused() -> None:
    env = gym.make("twinarm/SO101-PickCube-v0", obs_type="state")
    env.reset(seed=0)
    good = env.unwrapped.spec_arm.lower.copy()
    for bad in (np.nan, np.inf, -np.inf):
        action = good.copy()
        action[2] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            env.step(action)
    with pytest.raises(ValueError, match="shape"):
        env.step(good[:-1])
    env.close()


@pytest.mark.parametrize("arm", ["so101", "koch", "aloha"])
def test_fast_paths_equal_the_array_methods(arm: str) -> None:
    phys = ArmPhysics.from_arm(arm)
    phys.reset()
    rng = np.random.default_rng(0)
    spec = phys.spec
    for _ in range(20):
        x = rng.uniform(spec.lower - 0.2, spec.upper + 0.2)
        phys.set_targets(x)
        expected = phys._offset + phys._scale * np.minimum(np.maximum(x, spec.lower), spec.upper)
        np.testing.assert_array_equal(phys.data.ctrl[phys.actuator_ids], expected)
        phys.step_control()
        assert phys.joint_position_list() == phys.joint_positions().tolist()

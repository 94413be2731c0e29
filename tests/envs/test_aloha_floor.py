"""ALOHA's table has edges: a floor below it catches what falls off, so observations stay in their space."""

from __future__ import annotations

import gymnasium as gym
import pytest

import twinarm  # noqa: F401

#: (env id, the free joint to push off the table)
OFF_TABLE = [("twinarm/Aloha-TransferCube-v0", "cube_joint"), ("twinarm/Aloha-Insertion-v0", "peg_joint")]


@pytest.mark.parametrize(("env_id", "joint"), OFF_TABLE)
def test_object_off_the_table_comes_to_rest_inside_observation_space(env_id: str, joint: str) -> None:
    """Put the object beside the table (it used to fall for ever: z < -10 within 72 steps, outside the Box)."""
    env = gym.make(env_id, obs_type="state")
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    m, d = u.physics.model, u.physics.data
    adr = m.jnt_qposadr[m.joint(joint).id]
    d.qpos[adr : adr + 3] = [1.5, 1.5, 0.3]
    hold = obs["agent_pos"]
    for _ in range(150):  # 3 s at 50 Hz: a fall of ~1 m and a bounce settle well within it
        obs, reward, _, _, info = env.step(hold)
        assert env.observation_space.contains(obs), obs["environment_state"]
    z = obs["environment_state"][2]
    assert -0.76 < z < -0.7, f"object should rest on the floor 0.75 m below the table top, z = {z}"
    assert not info["is_success"] and reward == 0.0
    env.close()

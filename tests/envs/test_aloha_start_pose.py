"""ALOHA's mirrored fingers follow a reset to given joints at once, so a replay starts where its recording did."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401  (registers the ids)


@pytest.mark.parametrize("opening", [0.95, 0.1, 0.5])
def test_a_reset_to_given_grippers_holds_them(opening: float) -> None:
    """The mirror finger used to stay at the home keyframe: a gripper reset fully open read 1.0 at reset and 0.66
    one step later, the coupling dragging it shut."""
    env = gym.make("twinarm/Aloha-TransferCube-v0", obs_type="state")
    arm = env.unwrapped.spec_arm
    grippers = [arm.joint_names.index(f"{side}_gripper") for side in ("left", "right")]
    q = np.array(arm.home_pose, dtype=np.float64)
    q[grippers] = opening
    obs, _ = env.reset(seed=0, options={"joints": q})
    np.testing.assert_allclose(obs["agent_pos"][grippers], opening, atol=1e-6)
    m, d = env.unwrapped.physics.model, env.unwrapped.physics.data
    for side in ("left", "right"):
        finger, mirror = (d.qpos[m.joint(f"{side}_gripper{s}").qposadr[0]] for s in ("", "_mirror"))
        assert mirror == pytest.approx(-finger)
    for _ in range(5):  # held: the grippers stay where the reset put them
        obs, *_ = env.step(q.astype(np.float32))
    np.testing.assert_allclose(obs["agent_pos"][grippers], opening, atol=0.01)
    env.close()


def test_a_reset_past_the_fingers_travel_stops_at_it() -> None:
    """ACT's gripper 0..1 spans 0.01844..0.058 m, the finger moves 0.021..0.057 m: 1.0 starts it at its stop."""
    env = gym.make("twinarm/Aloha-TransferCube-v0", obs_type="state")
    arm = env.unwrapped.spec_arm
    q = np.array(arm.home_pose, dtype=np.float64)
    g = arm.joint_names.index("left_gripper")
    q[g] = 1.0
    obs, _ = env.reset(seed=0, options={"joints": q})
    assert obs["agent_pos"][g] == pytest.approx((0.057 - 0.01844) / (0.058 - 0.01844), abs=1e-6)
    obs, *_ = env.step(q.astype(np.float32))
    assert obs["agent_pos"][g] == pytest.approx((0.057 - 0.01844) / (0.058 - 0.01844), abs=1e-3)
    env.close()

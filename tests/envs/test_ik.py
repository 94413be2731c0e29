"""The experts' IK against dm_control's reference solver on poses known to be reachable."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from dm_control import mujoco as dm_mujoco
from dm_control.utils.inverse_kinematics import qpos_from_site_pose

import twinarm  # noqa: F401
from twinarm.envs.ik import TcpIK, down_rotation


@pytest.fixture(scope="module")
def physics():
    env = gym.make("twinarm/SO101-PickCube-v0", obs_type="state").unwrapped
    env.reset(seed=0)
    return env.physics


def _reachable_targets(physics, ik: TcpIK, n: int, seed: int):
    rng = np.random.default_rng(seed)
    arm = ~physics.spec.gripper_mask
    lo, hi = physics.spec.lower[arm], physics.spec.upper[arm]
    for _ in range(n):
        q = rng.uniform(lo * 0.6, hi * 0.6)
        pos, rot = ik.tcp_pose(q)
        yield q, pos, rot


def test_position_ik_matches_dm_control_reference(physics) -> None:
    ik = TcpIK(physics, rot_weight=0.0)
    dm_phys = dm_mujoco.Physics.from_model(dm_mujoco.wrapper.MjModel(physics.model))
    arm_joints = [n for n, g in zip(physics.spec.joint_names, physics.spec.gripper_mask, strict=True) if not g]
    home = physics.home_joints()[~physics.spec.gripper_mask]
    for _, pos, _ in _reachable_targets(physics, ik, 15, seed=1):
        ours, err = ik.solve(home, pos, None, iters=200)
        assert err < 1e-3
        assert np.all(ours >= ik.lower - 1e-9) and np.all(ours <= ik.upper + 1e-9)
        dm_phys.data.qpos[:] = physics.data.qpos
        ref = qpos_from_site_pose(dm_phys, "tcp", target_pos=pos, joint_names=arm_joints, tol=1e-10, max_steps=400)
        assert ref.success
        ref_pos, _ = ik.tcp_pose(ref.qpos[physics.qpos_adr[~physics.spec.gripper_mask]])
        # Both land on the same point (joint solutions may differ: a 5-DoF arm is redundant for position).
        np.testing.assert_allclose(ik.tcp_pose(ours)[0], ref_pos, atol=1e-3)


def test_pose_ik_reaches_reachable_orientations(physics) -> None:
    ik = TcpIK(physics, rot_weight=0.3)
    for q_true, pos, rot in _reachable_targets(physics, ik, 15, seed=2):
        q, err = ik.solve(q_true + 0.15, pos, rot, iters=300)
        got_pos, got_rot = ik.tcp_pose(q)
        assert np.linalg.norm(got_pos - pos) < 2e-3
        assert np.degrees(np.arccos(np.clip((np.trace(got_rot.T @ rot) - 1) / 2, -1, 1))) < 2.0


def test_down_rotation_points_the_fingers_down() -> None:
    for yaw in np.linspace(-np.pi, np.pi, 7):
        r = down_rotation(yaw)
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
        np.testing.assert_allclose(r[:, 2], [0, 0, 1])
        assert np.arctan2(r[1, 0], r[0, 0]) == pytest.approx(np.arctan2(np.sin(yaw), np.cos(yaw)))

"""`camera_rot_std` turns every camera, ALOHA's `top` included, by a proper rotation. `top` was
`mode="targetbody" target="table"`, whose orientation MuJoCo re-aims every step, ignoring `cam_quat`; and
`_small_rotation` gave `mju_axisAngle2Quat` a non-unit axis, so camera quats (and frames) were not unit."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np

import twinarm  # noqa: F401  (registers the envs)
from twinarm.arms import get_arm
from twinarm.envs.physics import load_scene, substeps_for
from twinarm.envs.randomization import _small_rotation


def _aimed_like_gym_aloha(mjspec: mujoco.MjSpec) -> None:
    top = mjspec.camera("top")
    top.mode = mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY
    top.targetbody = "table"


def test_aloha_top_camera_is_fixed_in_the_pose_its_targetbody_aim_gave() -> None:
    arm = get_arm("aloha")
    n = substeps_for(arm.control_hz)
    frames = []
    for hooks in ((), (_aimed_like_gym_aloha,)):
        model = load_scene(arm, n, hooks)
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        cam = model.camera("top").id
        frames.append((int(model.cam_mode[cam]), data.cam_xpos[cam].copy(), data.cam_xmat[cam].copy()))
    (mode, pos, mat), (aimed_mode, aimed_pos, aimed_mat) = frames
    assert mode == mujoco.mjtCamLight.mjCAMLIGHT_FIXED and aimed_mode == mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY
    np.testing.assert_array_equal(pos, aimed_pos)
    np.testing.assert_array_equal(mat, aimed_mat)


def test_camera_rot_std_turns_alohas_top_camera() -> None:
    env = gym.make("twinarm/Aloha-TransferCube-v0", obs_type="pixels", image_size=(48, 64),
                   randomization={"visual": {"camera_rot_std": 0.05}})  # fmt: skip
    u = env.unwrapped
    mats = []
    for seed in (1, 2):
        env.reset(seed=seed)
        cam = u.physics.model.camera("top").id
        mats.append(u.physics.data.cam_xmat[cam].reshape(3, 3).copy())
    for R in mats:
        angle = np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))  # the nominal frame is the identity
        assert angle > 0.1, f"top camera not turned ({angle:.3g} deg)"
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    env.close()


def test_small_rotations_are_unit_quaternions_and_camera_frames_rotations() -> None:
    rng = np.random.default_rng(0)
    norms = np.array([np.linalg.norm(_small_rotation(rng, 0.3)) for _ in range(500)])
    np.testing.assert_allclose(norms, 1, atol=1e-12)
    env = gym.make("twinarm/SO101-PickCube-v0", obs_type="state", randomization="camera")
    u = env.unwrapped
    m, d = u.physics.model, u.physics.data
    for seed in range(5):
        env.reset(seed=seed)
        np.testing.assert_allclose(np.linalg.norm(m.cam_quat, axis=1), 1, atol=1e-12)
        for c in range(m.ncam):
            R = d.cam_xmat[c].reshape(3, 3)
            np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)

"""`light_pos_std` changes what the cameras see. Every scene's one light is directional, which MuJoCo lights by its
direction alone: moving its position changed no pixel (the `lighting` perturbation and `sim2real` tested intensity
only). A moved directional light now also turns to aim where its nominal ray did."""

from __future__ import annotations

import pickle

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import twinarm  # noqa: F401  (registers the envs)
from twinarm.envs.randomization import ModelNominal, Randomization, VisualRandomization, domain_randomize
from twinarm.envs.render import CameraRenderer

MOVED = {"visual": {"light_pos_std": 0.3}}
#: Where each scene's `top` light points: straight down onto the table top (z = 0) below it.
AIM = {"twinarm/SO101-PickCube-v0": (0.2, 0.0, 0.0), "twinarm/Aloha-TransferCube-v0": (0.0, 0.5, 0.0)}


def _render(model: mujoco.MjModel, qpos: np.ndarray, cam) -> np.ndarray:
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_forward(model, data)  # the light's world direction (light_xdir) comes from the model here
    r = CameraRenderer(model, (cam,))
    image = r.render(data)[cam.name].astype(int)
    r.close()
    return image


@pytest.mark.parametrize("env_id", sorted(AIM))
def test_moving_a_directional_light_changes_the_pixels(env_id: str) -> None:
    env = gym.make(env_id, obs_type="pixels", image_size=(96, 128), randomization=MOVED)
    nominal = gym.make(env_id, obs_type="state").unwrapped.physics.model
    u = env.unwrapped
    model, cam = u.physics.model, u.cameras[0]
    assert model.nlight == 1 and model.light_type[0] == mujoco.mjtLightType.mjLIGHT_DIRECTIONAL
    obs, _ = env.reset(seed=1)
    qpos = u.physics.data.qpos.copy()
    drawn = _render(model, qpos, cam)
    np.testing.assert_array_equal(drawn, obs["pixels"][cam.name])  # the reset image shows the drawn light
    pos, direction = model.light_pos[0].copy(), model.light_dir[0].copy()
    assert np.linalg.norm(pos - nominal.light_pos[0]) > 0.05
    # Turned (by a few degrees), a unit vector, and still aimed at the table point it lit from above.
    assert np.degrees(np.arccos(np.clip(direction @ nominal.light_dir[0], -1, 1))) > 1
    assert np.linalg.norm(direction) == pytest.approx(1, abs=1e-12)
    to_aim = np.asarray(AIM[env_id]) - pos
    np.testing.assert_allclose(direction, to_aim / np.linalg.norm(to_aim), atol=1e-12)
    # The same state under the nominal light looks different.
    model.light_pos[:], model.light_dir[:] = nominal.light_pos, nominal.light_dir
    assert np.abs(_render(model, qpos, cam) - drawn).max() >= 3
    # A copy of the env resumes under the drawn light.
    model.light_pos[0], model.light_dir[0] = pos, direction
    clone = pickle.loads(pickle.dumps(u))
    np.testing.assert_array_equal(clone.physics.model.light_dir, model.light_dir)
    clone.close()
    env.close()


def test_the_light_draw_is_the_same_position_draw_as_before() -> None:
    """Randomness only from the generator given, and the same draws: one N(0, std) per light coordinate, nothing
    more, so the knobs drawn after it (cameras, colours, masses) keep their values for a seed."""
    model = gym.make("twinarm/SO101-PickCube-v0", obs_type="state").unwrapped.physics.model
    nom = ModelNominal.capture(model)
    cfg = Randomization(visual=VisualRandomization(light_pos_std=0.2, camera_pos_std=0.01))
    rng = np.random.default_rng(7)
    domain_randomize(model, rng, cfg, nom)
    expected = np.random.default_rng(7)
    np.testing.assert_array_equal(model.light_pos, nom.values["light_pos"] + expected.normal(0, 0.2, (model.nlight, 3)))
    np.testing.assert_array_equal(model.cam_pos, nom.values["cam_pos"] + expected.normal(0, 0.01, (model.ncam, 3)))
    domain_randomize(model, rng, Randomization(), nom)  # a re-draw restores the nominal direction
    np.testing.assert_array_equal(model.light_dir, nom.values["light_dir"])

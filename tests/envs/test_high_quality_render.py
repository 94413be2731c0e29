"""`high_quality_render=True` really turns on shadows and multisampling, although every scene sets
`<quality shadowsize="0" offsamples="0"/>` (it used to render the default path's pixels, byte for byte)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401  (registers the envs)
from twinarm.envs.render import CameraRenderer


def _first_image(env_id: str, **kw) -> tuple[np.ndarray, tuple[int, int]]:
    env = gym.make(env_id, obs_type="pixels", image_size=(96, 128), **kw)
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    quality = u.physics.model.vis.quality
    image = obs["pixels"][u.cameras[0].name].astype(int)
    env.close()
    return image, (quality.shadowsize, quality.offsamples)


@pytest.mark.parametrize("env_id", ["twinarm/SO101-PickCube-v0", "twinarm/Aloha-TransferCube-v0"])
def test_high_quality_pixels_differ_from_the_default(env_id: str) -> None:
    default, default_quality = _first_image(env_id)
    hq, hq_quality = _first_image(env_id, high_quality_render=True)
    changed = (np.abs(hq - default).max(-1) > 0).mean()
    assert changed > 0.05, f"high_quality_render changed only {changed:.1%} of the pixels"
    # The model keeps its own quality settings: only the high-quality renderer's GL contexts got more.
    assert hq_quality == default_quality == (0, 0)


def test_a_high_quality_renderer_leaves_the_default_path_as_it_was() -> None:
    """Quality is read from the model when a GL context is made: a default renderer made after a high-quality
    one on the same model draws the same bytes as one made before it."""
    env = gym.make("twinarm/SO101-PickCube-v0", obs_type="pixels", image_size=(96, 128))
    obs, _ = env.reset(seed=1)
    u = env.unwrapped
    cams = u.cameras
    hq = CameraRenderer(u.physics.model, cams, high_quality=True)
    hq_images = hq.render(u.physics.data)
    after = CameraRenderer(u.physics.model, cams)
    for cam in cams:
        np.testing.assert_array_equal(after.render(u.physics.data)[cam.name], obs["pixels"][cam.name])
        assert np.abs(hq_images[cam.name].astype(int) - obs["pixels"][cam.name]).max() > 0
    hq.close()
    after.close()
    env.close()

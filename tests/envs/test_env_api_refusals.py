"""Arguments the envs used to take wrongly in silence, or fail on deep inside numpy, MuJoCo or Gymnasium: each
is refused with a message naming the argument, or (tensors, a single camera name) now taken as meant."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401

ENV = "twinarm/SO101-PickCube-v0"


@pytest.fixture(scope="module")
def env():
    env = gym.make(ENV, obs_type="state")
    env.reset(seed=0)  # a first reset that fails leaves Gymnasium's passive checker unable to step
    yield env
    env.close()


@pytest.mark.parametrize("n", [-3, 0, 2.5, True, "3"])
def test_n_substeps_must_be_a_whole_number_from_one(n: object) -> None:
    """-3 gave a negative timestep (an arm that never moved), 0 meant the default, 2.5 failed on the period."""
    with pytest.raises(ValueError, match=rf"n_substeps must be a whole number >= 1 .*got {n!r}"):
        gym.make(ENV, obs_type="state", n_substeps=n)


def test_n_substeps_takes_a_numpy_integer() -> None:
    env = gym.make(ENV, obs_type="state", n_substeps=np.int64(5))
    assert env.unwrapped.physics.n_substeps == 5
    env.close()


def test_a_camera_observation_needs_a_camera() -> None:
    with pytest.raises(ValueError, match=r"obs_type 'pixels_agent_pos' needs at least one camera"):
        gym.make(ENV, cameras=[])
    with pytest.raises(ValueError, match=r"render_mode='rgb_array' renders the first camera"):
        gym.make(ENV, obs_type="state", cameras=[], render_mode="rgb_array")
    gym.make(ENV, obs_type="state", cameras=[]).close()


def test_one_camera_name_is_one_camera() -> None:
    env = gym.make(ENV, obs_type="pixels", cameras="front", image_size=(24, 32))
    assert list(env.observation_space["pixels"].spaces) == ["front"]
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [({"cameras": ["front", "front"]}, "cameras must not repeat a camera"),
     ({"cameras": [1]}, "cameras must be a camera name or a list of names"),
     ({"image_size": (48.7, 64.9)}, r"image_size must be two whole numbers"),
     ({"image_size": (True, 64)}, r"image_size must be two whole numbers")],
)  # fmt: skip
def test_camera_arguments_taken_wrongly_are_refused(kwargs: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        gym.make(ENV, **kwargs)


@pytest.mark.parametrize("options", [["joints"], {"joints": {"shoulder_pan": 0}}, {"joints": "abc"}])
def test_malformed_reset_options_are_refused_by_name(env, options: object) -> None:
    with pytest.raises(ValueError, match=r"reset options must be a dict|reset option 'joints' must be 6 finite"):
        env.reset(options=options)


@pytest.mark.parametrize("action", ["abc", np.zeros(6, bool), np.zeros(6, complex), [[0.0, 1.0], [0.0]], [None] * 6])
def test_an_action_of_anything_but_real_numbers_is_refused(env, action: object) -> None:
    with pytest.raises(ValueError, match=r"action must be 6 numbers \(the arm's joint targets: \('shoulder_pan'"):
        env.step(action)


def test_a_tensor_action_that_requires_grad_is_taken(env) -> None:
    torch = pytest.importorskip("torch")
    target = env.unwrapped.spec_arm.home_pose
    env.step(torch.tensor(target, dtype=torch.float32, requires_grad=True))
    np.testing.assert_allclose(env.unwrapped.physics.targets(), target, atol=1e-6)


def test_an_integer_action_is_taken_as_floats(env) -> None:
    env.step([0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(env.unwrapped.physics.targets(), [0, 0, 0, 0, 0, 1], atol=1e-9)


def test_arm_must_agree_with_the_id() -> None:
    """The id fixes the arm: arm='koch' under the SO101 id built a Koch env that every record called SO101."""
    with pytest.raises(ValueError, match=r"twinarm/SO101-PickCube-v0 is the so101 arm's env, got arm='koch'"):
        gym.make(ENV, arm="koch", obs_type="state")
    gym.make(ENV, arm="so101", obs_type="state").close()


@pytest.mark.parametrize(("env_id", "arm", "says"), [
    (ENV, "aloha", "PickCube is a one-arm task and the aloha arm has two"),
    ("twinarm/Aloha-TransferCube-v0", "so101", "TransferCube is a two-arm task and the so101 arm has one"),
])  # fmt: skip
def test_an_arm_of_the_other_family_is_named_before_the_model_is_built(env_id: str, arm: str, says: str) -> None:
    """It failed in the task's bind: "model b'aloha scene...' lacks the site 'tcp' tasks rely on"."""
    with pytest.raises(ValueError, match=says):
        gym.make(env_id, arm=arm, obs_type="state")


def test_render_without_a_render_mode_warns(env) -> None:
    with pytest.warns(UserWarning, match=r'render_mode="rgb_array"'):
        assert env.render() is None

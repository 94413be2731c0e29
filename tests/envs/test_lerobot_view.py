"""`LeRobotView`: a twinarm env in LeRobot's units, resetting as LeRobot's rollout resets it, inside the vector envs
LeRobot builds, with feature names that are the dataset's."""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401
from twinarm.envs.experts import make_expert
from twinarm.envs.lerobot_view import (
    LEROBOT_RESET_MARKER,
    lerobot_env_features,
    lerobot_features_map,
    make_lerobot_view,
)
from twinarm.registration import entry_for

PICK = "twinarm/SO101-PickCube-v0"
ALOHA = "twinarm/Aloha-TransferCube-v0"


def test_the_expert_in_lerobot_units_does_what_it_does_in_si() -> None:
    """Side by side from one seed: the raw env driven by the expert, the view driven by the same actions in
    degrees/0..100. States are the raw ones converted, environment states the same, and the cube is lifted."""
    raw = gym.make(PICK, obs_type="state")
    view = make_lerobot_view(PICK, obs_type="state")
    spec = view.unwrapped.spec_arm
    obs, _ = raw.reset(seed=3)
    seen, _ = view.reset(seed=3)
    expert = make_expert(raw)
    for _ in range(150):
        # The same actions, up to float32 rounding of the degree round trip: the same trajectory within 1e-3.
        np.testing.assert_allclose(seen["agent_pos"], spec.to_lerobot(obs["agent_pos"]), atol=0.06)  # 1e-3 rad
        np.testing.assert_allclose(seen["environment_state"], obs["environment_state"], atol=1e-3)
        assert seen["agent_pos"].dtype == np.float32 and seen in view.observation_space
        action = expert(obs)
        obs, reward, *_, info = raw.step(action)
        seen, seen_reward, *_, seen_info = view.step(spec.to_lerobot(action))
        assert seen_reward == pytest.approx(reward, abs=1e-3)
    assert info["is_success"] and seen_info["is_success"]


def test_spaces_are_the_specs_in_lerobot_units() -> None:
    view = make_lerobot_view(PICK)
    spec = view.unwrapped.spec_arm
    np.testing.assert_allclose(view.action_space.high, spec.to_lerobot(spec.upper), rtol=1e-6)
    np.testing.assert_allclose(view.action_space.low, spec.to_lerobot(spec.lower), rtol=1e-6)
    assert view.action_space.high[-1] == pytest.approx(100 * spec.upper[-1])  # gripper 0..100
    assert view.observation_space["pixels"] == view.env.observation_space["pixels"]
    # ALOHA's LeRobot units are radians (as gym_aloha's): its view changes nothing.
    aloha = make_lerobot_view(ALOHA, obs_type="state")
    assert aloha.action_space == aloha.env.action_space


def test_reset_drops_lerobots_rollout_marker_and_keeps_the_rest() -> None:
    view = make_lerobot_view(PICK, obs_type="state")
    spec = view.unwrapped.spec_arm
    home, _ = view.reset(seed=0, options={LEROBOT_RESET_MARKER: True})
    np.testing.assert_allclose(home["agent_pos"], spec.to_lerobot(spec.home_pose), atol=0.05)
    q = spec.home_pose + 0.2 * spec.gripper_mask
    start, _ = view.reset(seed=0, options={LEROBOT_RESET_MARKER: True, "joints": spec.to_lerobot(q)})
    np.testing.assert_allclose(start["agent_pos"], spec.to_lerobot(q), atol=0.05)
    with pytest.raises(ValueError, match="unknown reset option.*'colour'"):
        view.reset(options={LEROBOT_RESET_MARKER: True, "colour": 1})


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_in_the_vector_env_lerobot_builds(asynchronous: bool) -> None:
    """What `lerobot-eval`'s rollout reads from its vector env: episode length, task text, fps, renders, and
    `final_info["is_success"]` (same-step autoreset; async workers are forkserver processes, as LeRobot's)."""
    make = functools.partial(make_lerobot_view, PICK, "Pick up the cube.", obs_type="state", render_mode="rgb_array",
                             image_size=(48, 64), max_episode_steps=3)  # fmt: skip
    kw = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
    vec = gym.vector.AsyncVectorEnv([make] * 2, context="forkserver", **kw) if asynchronous else \
        gym.vector.SyncVectorEnv([make] * 2, **kw)  # fmt: skip
    try:
        obs, _ = vec.reset(seed=[5, 6], options={LEROBOT_RESET_MARKER: True})
        assert vec.call("_max_episode_steps") == (3, 3)
        assert vec.call("task_description") == ("Pick up the cube.",) * 2
        assert vec.metadata["render_fps"] == 30
        assert np.stack(vec.call("render")).shape == (2, 48, 64, 3)
        for _ in range(3):
            obs, _, _, truncated, info = vec.step(obs["agent_pos"])
        assert truncated.all() and "is_success" in info["final_info"]
        assert obs["agent_pos"].dtype == np.float32 and np.abs(obs["agent_pos"]).max() > 20  # degrees
    finally:
        vec.close()


@pytest.mark.parametrize("env_id", [PICK, ALOHA])
@pytest.mark.parametrize("obs_type", ["pixels_agent_pos", "state"])
def test_features_are_named_as_the_dataset_names_them(env_id: str, obs_type: str) -> None:
    env = gym.make(env_id, obs_type=obs_type, image_size=(48, 64))
    feats = lerobot_env_features(env.observation_space, env.action_space.shape[0])
    spec = env.unwrapped.spec_arm
    state = env.observation_space.spaces.get("environment_state")
    dataset = spec.lerobot_features(
        cameras=spec.resolve_cameras(image_size=(48, 64)) if obs_type != "state" else (),
        env_state_dim=state.shape[0] if state is not None else None,
    )
    mapped = lerobot_features_map(feats)
    assert set(mapped.values()) == set(dataset)
    for key, (kind, shape) in feats.items():
        assert list(shape) == dataset[mapped[key]]["shape"], key
        assert kind == {"action": "ACTION", "agent_pos": "STATE", "environment_state": "ENV"}.get(key, "VISUAL")
    assert entry_for(env_id).task_info.instruction  # the plugin's task_description
    env.close()


def test_a_start_pose_is_given_in_the_views_units() -> None:
    """A LeRobot dataset's observation.state (degrees, gripper 0..100) used as a start pose was read as radians
    and clipped to the limits: [17, -29, 23, 69, 6, 50] started the arm at [110, -100, 97, 95, 163, 100]."""
    view = make_lerobot_view("twinarm/SO101-PickCube-v0", obs_type="state")
    start = np.array([17.19, -28.65, 22.92, 68.75, 5.73, 50.0], dtype=np.float32)
    obs, _ = view.reset(seed=0, options={"joints": start, "lerobot_new_rollout": True})
    np.testing.assert_allclose(obs["agent_pos"], start, atol=1e-3)
    with pytest.raises(ValueError, match="must be 6 finite values"):
        view.reset(options={"joints": [0.0, 1.0]})
    view.close()

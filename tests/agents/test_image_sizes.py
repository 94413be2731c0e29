"""Camera frames of another size than a policy was trained on (bad-input audit X1, X2, X4): the same shape is
resized with one ResizedImagesWarning per camera; another aspect ratio, which resizing would squash, is refused by
name. `Policy.act` resized silently, `evaluate` checked only the first camera and `check_fits` no size at all."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401
from twinarm.agents.env_io import PolicyEnvMismatch, ResizedImagesWarning, check_fits, image_size_problem
from twinarm.agents.eval import evaluate
from twinarm.agents.features import Feature
from twinarm.agents.policy import Policy
from twinarm.agents.registry import make_policy
from twinarm.arms import SO101

REACH = "twinarm/SO101-Reach-v0"


def _act(path: Path, sizes: dict[str, tuple[int, int]]) -> Policy:
    inputs = {"observation.state": Feature("STATE", (6,))}
    inputs |= {f"observation.images.{c}": Feature("VISUAL", (3, *hw)) for c, hw in sizes.items()}
    make_policy("act", input_features=inputs, output_features={"action": Feature("ACTION", (6,))}, arm="so101",
                chunk_size=4, n_action_steps=4, dim_model=16, n_heads=2, dim_feedforward=32, n_encoder_layers=1,
                n_vae_encoder_layers=1, latent_dim=4).save_pretrained(path)  # fmt: skip
    return Policy.from_pretrained(path)


def test_the_aspect_rule() -> None:
    assert image_size_problem("front", (240, 320), (240, 320)) is None
    assert image_size_problem("front", (480, 640), (240, 320)) is None  # the same shape: resized
    assert image_size_problem("front", (84, 112), (480, 640)) is None  # rounding
    said = image_size_problem("front", (64, 256), (64, 64))
    assert said is not None and "camera front gives 64x256 frames, the policy was trained on 64x64" in said
    assert "image_size=(64, 64)" in said


def test_act_warns_once_per_camera_and_refuses_another_aspect(tmp_path: Path) -> None:
    policy = _act(tmp_path / "p", {"front": (48, 64)})
    env = gym.make(REACH, image_size=(96, 128), cameras=["front"])
    obs, _ = env.reset(seed=0)
    with pytest.warns(ResizedImagesWarning, match="camera front: the policy was trained on 48x64 images and gets "
                      "96x128: each frame is resized"):  # fmt: skip
        policy.act(obs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResizedImagesWarning)
        policy.act(obs)  # said once
    env.close()
    wide = {**obs, "pixels": {"front": np.zeros((48, 128, 3), np.uint8)}}
    with pytest.raises(PolicyEnvMismatch, match="camera front gives 48x128 frames, the policy was trained on 48x64"):
        policy.act(wide)


def test_evaluate_checks_every_camera(tmp_path: Path) -> None:
    """A sim env renders every camera at one size (the first camera's): the others are resized (warned) or,
    of another aspect ratio, refused before any episode runs."""
    policy = _act(tmp_path / "p", {"front": (48, 64), "wrist": (24, 32)})
    with pytest.warns(ResizedImagesWarning, match="camera wrist: the policy was trained on 24x32 images and the env "
                      "gives 48x64"):  # fmt: skip
        result = evaluate(policy, REACH, n_episodes=1, n_envs=1, max_steps=2)
    assert result.aggregated["n_episodes"] == 1
    squashed = _act(tmp_path / "q", {"front": (48, 64), "wrist": (48, 48)})
    with pytest.raises(PolicyEnvMismatch, match="camera wrist gives 48x64 frames, the policy was trained on 48x48"):
        evaluate(squashed, REACH, n_episodes=1, n_envs=1, max_steps=2)


def test_check_fits_compares_camera_shapes() -> None:
    env = gym.make(REACH, image_size=(48, 128), cameras=["front"])
    features = {"observation.state": Feature("STATE", (6,)), "observation.images.front": Feature("VISUAL", (3, 48, 64)),
                "action": Feature("ACTION", (6,))}  # fmt: skip
    with pytest.raises(PolicyEnvMismatch, match="camera front gives 48x128 frames"):
        check_fits(features, "so101", SO101, env.observation_space, REACH)
    env.close()

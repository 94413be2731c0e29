"""A policy that cannot run on an env is refused before its first step, naming what differs (actions, joints,
cameras, object poses), by `evaluate`, `twinarm eval` and `twinarm train` (at start, not at its first periodic
evaluation); one trained for another arm of the same joints runs, with a warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from twinarm.agents.env_io import OtherArmWarning, PolicyEnvMismatch
from twinarm.agents.eval import evaluate
from twinarm.agents.policy import Policy
from twinarm.cli.main import main

LEROBOT_STATE_ACT = Path(__file__).resolve().parents[1] / "fixtures/lerobot_policies/act_state/pretrained_model"


def test_a_so101_camera_policy_is_refused_on_aloha(tiny_act_checkpoint) -> None:
    policy = Policy.from_pretrained(tiny_act_checkpoint(cameras=("front", "wrist")))
    with pytest.raises(PolicyEnvMismatch) as info:
        evaluate(policy, "twinarm/Aloha-TransferCube-v0", n_episodes=1, n_envs=1, max_steps=2)
    assert str(info.value) == (
        "the policy does not fit twinarm/Aloha-TransferCube-v0: its actions are 6-D, the aloha arm has 14 joints; "
        "its observation.state is 6-D, the aloha arm has 14 joints; it sees camera(s) front, wrist, the env gives top "
        "(eval --rename-feature observation.images.front=observation.images.top maps it onto the env's; the env has "
        "no camera left for wrist; to train, a `twinarm dataset rename-feature` copy)")


def test_another_tasks_object_poses_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    """LeRobot's PickCube ACT reads the cube's 7-D pose; Reach's environment_state is its 3-D target."""
    assert main(["eval", "--policy", str(LEROBOT_STATE_ACT), "--env", "twinarm/SO101-Reach-v0", "--episodes", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("twinarm eval: error: the policy does not fit twinarm/SO101-Reach-v0: its "
                          "observation.environment_state is 7-D, the env's is 3-D (another task's objects)\n")  # fmt: skip


def test_a_policy_of_another_arm_with_the_same_joints_runs_with_a_warning(tiny_act_checkpoint, tmp_path: Path) -> None:
    policy = Policy.from_pretrained(tiny_act_checkpoint())
    with pytest.warns(OtherArmWarning, match=r"trained for the so101 arm and runs on twinarm/Koch-Reach-v0 \(koch\)"):
        result = evaluate(policy, "twinarm/Koch-Reach-v0", n_episodes=1, n_envs=1, max_steps=3)
    assert result.lengths == [3]
    run = subprocess.run([sys.executable, "-m", "twinarm.cli.main", "eval", "--policy", str(tiny_act_checkpoint()),
                          "--env", "twinarm/Koch-Reach-v0", "--episodes", "1", "--max-steps", "3", "--videos", "0",
                          "--out", str(tmp_path / "eval")], capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    # One line, as the CLI's other messages: not the source line that warned.
    assert ("twinarm: warning: the policy was trained for the so101 arm and runs on twinarm/Koch-Reach-v0 (koch): "
            "same joints and units, other kinematics and joint ranges\n") in run.stderr
    assert "warnings.warn" not in run.stderr and "UserWarning" not in run.stderr


def test_train_refuses_an_env_of_another_arm_before_its_first_step(scripted_dataset: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """SO-101 recordings (6 joints) trained for ALOHA's env: the run stops at once, with the dataset's arm named."""
    out = tmp_path / "run"
    with pytest.warns(OtherArmWarning, match=r"the dataset was recorded on the so101 arm \(so_follower\)"):
        rc = main(["train", "--policy", "act", "--dataset", str(scripted_dataset), "--env",
                   "twinarm/Aloha-TransferCube-v0", "--output-dir", str(out), "--steps", "5", "--no-progress",
                   "--set", "dim_model=16"])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "twinarm train: error: the policy does not fit twinarm/Aloha-TransferCube-v0: its actions are 6-D" in err
    assert not (out / "checkpoints").exists() and not (out / "train_log.csv").exists()


def test_act_takes_the_env_observation_and_returns_the_env_action(tiny_act_checkpoint) -> None:
    """`policy.act(obs)` in a user's own loop is `twinarm eval`'s step (EnvAdapter both ways), for one env and a
    vector env; the env observation handed to `select_action` is refused, pointing at `act`."""
    import gymnasium as gym
    import numpy as np

    from twinarm.agents.env_io import EnvAdapter
    from twinarm.arms import get_arm

    policy = Policy.from_pretrained(tiny_act_checkpoint(cameras=("front", "wrist")))
    env = gym.make("twinarm/SO101-PickCube-v0", image_size=(48, 64))
    obs, _ = env.reset(seed=3)
    with pytest.raises(ValueError, match=r"lacks the policy's input\(s\) observation.state, .* policy.act\(obs\)"):
        policy.select_action(obs)
    policy.reset()
    action = policy.act(obs)
    adapter = EnvAdapter(get_arm("so101"), policy.config.input_features)
    policy.reset()
    expected = adapter.action_to_env(policy.select_action(adapter.obs_to_batch(obs)))
    assert action.shape == (6,) and env.action_space.contains(action) and np.array_equal(action, expected)
    env.step(action)
    env.close()
    venv = gym.make_vec("twinarm/SO101-PickCube-v0", num_envs=2, vectorization_mode="sync", image_size=(48, 64))
    obs, _ = venv.reset(seed=3)
    policy.reset()
    actions = policy.act(obs)
    assert actions.shape == (2, 6) and venv.action_space.contains(actions)
    assert np.allclose(actions[0], action, atol=1e-6)  # the same seed: the same first action (batch-2 rounding)
    venv.close()


def test_frames_of_another_size_than_trained_on_are_warned(tiny_act_checkpoint) -> None:
    """They run (each frame resized to the training size), but a policy seeing other detail than in training was
    silent before, on a real arm too (`eval --image-size`)."""
    from twinarm.agents.eval import ResizedImagesWarning

    policy = Policy.from_pretrained(tiny_act_checkpoint(cameras=("front",), image=(48, 64)))
    with pytest.warns(ResizedImagesWarning, match="trained on 48x64 images and the env gives 24x32: each frame is "
                      "resized to the training size"):  # fmt: skip
        result = evaluate(policy, "twinarm/SO101-Reach-v0", n_episodes=1, n_envs=1, max_steps=2, image_size=(24, 32))
    assert result.aggregated["n_episodes"] == 1

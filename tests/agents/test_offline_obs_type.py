"""`train --obs-type` offline picks which of the dataset's observations the policy takes (it was ignored: a state
recipe pointed at a camera dataset trained a two-camera ResNet policy); one the dataset lacks is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twinarm.agents.features import Feature, inputs_for_obs_type
from twinarm.cli.main import main

INPUTS = {"observation.state": Feature("STATE", (6,)), "observation.environment_state": Feature("ENV", (7,)),
          "observation.images.front": Feature("VISUAL", (3, 24, 32)),
          "observation.images.wrist": Feature("VISUAL", (3, 24, 32))}  # fmt: skip


@pytest.mark.parametrize(("obs_type", "keys"), [
    (None, list(INPUTS)),
    ("state", ["observation.state", "observation.environment_state"]),
    ("pixels_agent_pos", ["observation.state", "observation.images.front", "observation.images.wrist"]),
    ("pixels", ["observation.images.front", "observation.images.wrist"]),
])  # fmt: skip
def test_each_obs_type_takes_what_its_env_gives(obs_type: str | None, keys: list[str]) -> None:
    assert list(inputs_for_obs_type(INPUTS, obs_type, "d")) == keys


@pytest.mark.parametrize(("obs_type", "inputs", "said"), [
    ("pixels", ["observation.state", "observation.environment_state"], "d has no camera feature to train on"),
    ("pixels_agent_pos", ["observation.images.front"], "d has no observation.state feature to train on"),
    ("state", ["observation.images.front"], "d has no observation.state or observation.environment_state feature"),
])  # fmt: skip
def test_an_obs_type_the_dataset_lacks_is_refused_by_name(obs_type: str, inputs: list[str], said: str) -> None:
    with pytest.raises(ValueError, match=f"--obs-type {obs_type}: {said}"):
        inputs_for_obs_type({k: INPUTS[k] for k in inputs}, obs_type, "d")


def test_a_state_policy_trains_from_a_camera_dataset(tmp_path: Path, scripted_dataset: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    data, run = tmp_path / "cams", tmp_path / "run"
    assert main(["record", "--env", "twinarm/SO101-Reach-v0", "--root", str(data), "--episodes", "1", "--height",
                 "24", "--width", "32", "--no-progress"]) == 0  # fmt: skip
    tiny = ["--set", "chunk_size=4", "--set", "n_action_steps=4", "--set", "dim_model=16", "--set", "n_heads=2",
            "--set", "dim_feedforward=32", "--set", "n_encoder_layers=1", "--set", "n_vae_encoder_layers=1",
            "--set", "latent_dim=4"]  # fmt: skip
    assert main(["train", "--policy", "act", "--dataset", str(data), "--obs-type", "state", "--output-dir", str(run),
                 "--steps", "2", "--batch-size", "2", "--eval-freq", "0", "--no-progress", *tiny]) == 0  # fmt: skip
    cfg = json.loads((run / "checkpoints/last/pretrained_model/config.json").read_text())
    assert list(cfg["input_features"]) == ["observation.state"]  # the cameras were dropped, never decoded
    capsys.readouterr()
    assert main(["train", "--policy", "act", "--dataset", str(scripted_dataset), "--obs-type", "pixels",
                 "--output-dir", str(tmp_path / "none"), "--steps", "1", "--no-progress"]) == 1  # fmt: skip
    assert f"--obs-type pixels: {scripted_dataset} has no camera feature to train on" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()

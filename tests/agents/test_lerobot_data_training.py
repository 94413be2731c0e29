"""Training on datasets LeRobot wrote (tests/fixtures/lerobot_v3: its recorder's files, 3 joints, the front
camera at 32x48 and the wrist at 16x24, as LeRobot records each camera at its own resolution)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from twinarm.agents.policy import Policy
from twinarm.cli.main import main

LEROBOT_DATA = Path(__file__).resolve().parents[1] / "fixtures/lerobot_v3/video_h264"
TINY = ["--set", "dim_model=16", "--set", "n_heads=2", "--set", "dim_feedforward=32", "--set", "n_encoder_layers=1",
        "--set", "n_vae_encoder_layers=1", "--set", "latent_dim=4", "--set", "chunk_size=4", "--set",
        "n_action_steps=4"]  # fmt: skip


def test_act_trains_on_cameras_of_different_sizes(tmp_path: Path) -> None:
    """Each camera size goes through the backbone on its own; the 2-D position table follows each feature map."""
    out = tmp_path / "run"
    assert main(["train", "--policy", "act", "--dataset", str(LEROBOT_DATA), "--output-dir", str(out), "--steps", "2",
                 "--batch-size", "2", "--threads", "1", "--no-progress", *TINY]) == 0  # fmt: skip
    policy = Policy.from_pretrained(out)
    shapes = {k: f.shape for k, f in policy.config.input_features.items() if "images" in k}
    assert shapes == {"observation.images.front": (3, 32, 48), "observation.images.wrist": (3, 16, 24)}
    batch = {"observation.state": torch.zeros(2, 3), "observation.images.front": torch.rand(2, 3, 32, 48),
             "observation.images.wrist": torch.rand(2, 3, 16, 24)}  # fmt: skip
    chunk = policy.predict_action_chunk(batch)
    assert chunk.shape == (2, 4, 3) and torch.isfinite(chunk).all()  # the fixture's 3 joints
    # The wrist's tokens count: with another wrist image the chunk changes (its 2x3 feature map is read).
    other = policy.predict_action_chunk({**batch, "observation.images.wrist": torch.rand(2, 3, 16, 24)})
    assert not torch.equal(chunk, other)


def test_diffusion_refuses_cameras_of_different_sizes_as_lerobot_does(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert main(["train", "--policy", "diffusion", "--dataset", str(LEROBOT_DATA), "--output-dir",
                 str(tmp_path / "run"), "--steps", "2", "--eval-freq", "0", "--no-progress"]) == 1  # fmt: skip
    assert ("twinarm train: error: Diffusion Policy needs every camera at one image size; the data has wrist 16x24, "
            "front 32x48") in capsys.readouterr().err  # in the dataset's order (LeRobot wrote wrist first)


def test_an_unknown_robot_type_asks_for_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    shutil.copytree(LEROBOT_DATA, data)
    info = json.loads((data / "meta/info.json").read_text())
    (data / "meta/info.json").write_text(json.dumps({**info, "robot_type": "bimanual_piper"}))
    assert main(["train", "--policy", "act", "--dataset", str(data), "--output-dir", str(tmp_path / "run"),
                 "--steps", "2", "--no-progress", *TINY]) == 1  # fmt: skip
    assert ("the dataset's robot_type 'bimanual_piper' is none of twinarm's arms (so_follower, "
            "koch_follower, aloha): pass --env") in capsys.readouterr().err


def test_a_dataset_without_action_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An observation-only dataset (or one whose `action` was renamed): the error named no dataset (audit B12)."""
    data = tmp_path / "data"
    shutil.copytree(LEROBOT_DATA, data)
    info = json.loads((data / "meta/info.json").read_text())
    del info["features"]["action"]  # the data files' extra column is left unread
    (data / "meta/info.json").write_text(json.dumps(info))
    assert main(["train", "--policy", "act", "--dataset", str(data), "--output-dir", str(tmp_path / "run"),
                 "--steps", "2", "--no-progress", *TINY]) == 1  # fmt: skip
    assert f"twinarm train: error: --dataset {data}: no 'action' feature" in capsys.readouterr().err

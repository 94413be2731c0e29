"""Offline TD-MPC (`train --policy tdmpc --dataset D` with `next.reward`): the batches carry the sequences the policy
learns from (observations over horizon + 1 frames, rewards and done flags over the horizon), and its target network
follows the online one step by step, as online training's does."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.agents.conftest import TINY, tiny_config
from twinarm.agents.train import TrainConfig, delta_timestamps, train


@pytest.fixture(scope="module")
def reward_dataset(scripted_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scripted episodes again, with `next.reward` and `next.done` (what offline TD-MPC learns from)."""
    from twinarm.datasets_io.reader import LeRobotDatasetReader
    from twinarm.datasets_io.writer import DatasetWriter

    info = json.loads((scripted_dataset / "meta/info.json").read_text())
    kept = ("observation.state", "observation.environment_state", "action")
    feats = {k: dict(v) for k, v in info["features"].items() if k in kept}
    feats["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    feats["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    src = LeRobotDatasetReader(scripted_dataset)
    root = tmp_path_factory.mktemp("rewards") / "ds"
    writer = DatasetWriter.create(root, info["fps"], feats, robot_type=info["robot_type"])
    frames = [src[i] for i in range(len(src))]
    episodes = [int(f["episode_index"]) for f in frames]
    for i, (frame, ep) in enumerate(zip(frames, episodes, strict=True)):
        last = i == len(episodes) - 1 or episodes[i + 1] != ep
        writer.add_frame({**{k: frame[k].numpy() for k in kept}, "next.reward": np.array([(i % 7) / 7], np.float32),
                          "next.done": np.array([last])}, task="Pick up the cube.")  # fmt: skip
        if last:
            writer.save_episode()
    writer.finalize()
    return root


def test_delta_timestamps_ask_for_what_tdmpc_learns_from() -> None:
    cfg = tiny_config("tdmpc")  # horizon 3
    fps = 10
    got = delta_timestamps(cfg, fps, {"next.reward": None, "next.done": None, **cfg.input_features})
    frames = {k: [round(t * fps) for t in v] for k, v in got.items()}
    assert frames == {"observation.state": [0, 1, 2, 3], "observation.environment_state": [0, 1, 2, 3],
                      "action": [0, 1, 2], "next.reward": [0, 1, 2], "next.done": [0, 1, 2]}  # fmt: skip
    assert "next.done" not in delta_timestamps(cfg, fps, {"next.reward": None})  # asked only of a dataset that has it
    act = tiny_config("act")
    assert delta_timestamps(act, fps, {"next.reward": None}).keys() == {"action"}  # ACT: its current frame, no reward


def test_offline_tdmpc_trains_and_its_target_network_follows(reward_dataset: Path, tmp_path: Path) -> None:
    tc = TrainConfig(policy="tdmpc", dataset=str(reward_dataset), output_dir=str(tmp_path / "run"), steps=3,
                     batch_size=4, save_freq=1, log_freq=1, eval_freq=0, threads=1, progress=False, device="cpu",
                     policy_overrides=TINY["tdmpc"])  # fmt: skip
    last = train(tc)  # it crashed on its first batch: a (B,) reward column where TD-MPC needs (B, horizon)
    rows = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    header, losses = rows[0].split(","), [float(r.split(",")[1]) for r in rows[1:]]
    assert "reward_loss" in header and len(losses) == 3 and all(math.isfinite(x) for x in losses)

    def targets(step: int) -> dict[str, torch.Tensor]:
        w = load_file(str(last.parent / f"{step:08d}" / "pretrained_model" / "model.safetensors"))
        return {k: v for k, v in w.items() if k.startswith("model_target.")}

    first, third = targets(1), targets(3)
    assert first and first.keys() == third.keys()
    assert any(not torch.equal(first[k], third[k]) for k in first), "model_target never moved (no update_target)"

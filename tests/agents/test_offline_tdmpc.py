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


def test_steps_past_an_episodes_end_teach_nothing() -> None:
    """The reader repeats an episode's last frame past its end and flags it `_is_pad`; without `next.done` those
    repeats were learnt from as real steps. Now whatever sits in a padded step leaves the loss as it is."""
    from twinarm.agents.tdmpc.tdmpc import TDMPCPolicy

    cfg = tiny_config("tdmpc")  # horizon 3
    torch.manual_seed(0)
    policy = TDMPCPolicy(cfg, None)
    b, h = 4, cfg.horizon
    gen = torch.Generator().manual_seed(1)
    batch = {k: torch.rand(b, h + 1, *f.shape, generator=gen) for k, f in cfg.input_features.items()}
    batch["action"] = torch.rand(b, h, cfg.output_features["action"].shape[0], generator=gen) * 2 - 1
    batch["next.reward"] = torch.rand(b, h, generator=gen)
    pad = torch.zeros(b, h, dtype=torch.bool)
    pad[0, 2:] = True  # sample 0 ends after its second step
    batch["action_is_pad"], batch["next.reward_is_pad"] = pad, pad
    for k in cfg.input_features:
        batch[f"{k}_is_pad"] = torch.cat((torch.zeros(b, 1, dtype=torch.bool), pad), dim=1)

    def loss(b_: dict) -> float:
        torch.manual_seed(2)
        return float(policy(b_)[0].detach())

    other = {k: v.clone() for k, v in batch.items()}
    other["next.reward"][0, 2:] += 5.0  # whatever the padded step holds
    other["action"][0, 2:] = -other["action"][0, 2:]
    assert loss(other) == pytest.approx(loss(batch), rel=1e-6)
    unflagged = {k: v for k, v in other.items() if not k.endswith("_is_pad")}
    assert loss(unflagged) != pytest.approx(loss(batch), rel=1e-3)  # ... which did count before

"""Datasets as LeRobot 0.6.1 writes them for each arm: `so_follower` for both SO arms (LeRobot's robot `name`
since 0.4.3), ALOHA's `aloha_sim_*` joint names `{"motors": [...]}`, a Koch recording in LeRobot's default
-100..100 range. Each was refused or silently misread by twinarm's tools (audit P1, P2, P4); twinarm now writes
`so_follower` itself (P3), so LeRobot's own resume and merge checks take its SO datasets."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from twinarm.arms import ALOHA, KOCH, SO100, SO101, arms_for_robot_type, same_robot
from twinarm.cli.main import main
from twinarm.cli.replay_cmd import load_episode
from twinarm.dataset_arm import LeRobotRangeUnitsWarning, check_range_units, recorded_arms
from twinarm.datasets_io.layout import INFO_PATH, RECORD_PATH, DatasetError
from twinarm.datasets_io.writer import DatasetWriter
from twinarm.spec import ArmSpec

TINY_ACT = ["--set", "dim_model=32", "--set", "dim_feedforward=64", "--set", "n_heads=2", "--set", "n_encoder_layers=1",
            "--set", "n_vae_encoder_layers=1", "--set", "chunk_size=4", "--set", "n_action_steps=4"]  # fmt: skip


def _dataset(root: Path, spec: ArmSpec, *, robot_type: str, twinarm_env: str | None = None, frames: int = 12,
             scale: float = 1.0) -> Path:
    """One episode of random in-range joint values in LeRobot's units (times `scale`), written with `robot_type`;
    with `twinarm_env`, marked as twinarm's recording in it (RECORD_PATH), else as LeRobot leaves it (unmarked)."""
    rng = np.random.default_rng(0)
    writer = DatasetWriter.create(root, spec.control_hz, spec.lerobot_features(cameras=()), robot_type=robot_type)
    for _ in range(frames):
        q = spec.to_lerobot(rng.uniform(spec.lower, spec.upper)).astype(np.float32)
        q[~spec.gripper_mask] *= scale
        writer.add_frame({"observation.state": q, "action": q}, task="move")
    writer.save_episode()
    writer.finalize()
    if twinarm_env is not None:
        (root / RECORD_PATH).write_text(json.dumps({"env": twinarm_env}))
    return root


def _relabel(root: Path, **changes: object) -> None:
    info = json.loads((root / INFO_PATH).read_text())
    for key, value in changes.items():
        if key == "names":
            for feature in ("observation.state", "action"):
                info["features"][feature]["names"] = value
        else:
            info[key] = value
    (root / INFO_PATH).write_text(json.dumps(info, indent=4))


def test_lerobots_so_follower_is_either_so_arm_and_one_robot_with_the_older_names() -> None:
    assert SO101.robot_type == SO100.robot_type == "so_follower"  # what twinarm writes now, as LeRobot does
    assert arms_for_robot_type("so_follower") == (SO101, SO100)
    assert arms_for_robot_type("so100_follower") == (SO100,) and arms_for_robot_type("so101") == (SO101,)
    assert arms_for_robot_type("bimanual_piper") == ()
    assert same_robot("so_follower", "so101_follower") and same_robot("so100_follower", "so101_follower")
    assert not same_robot("so_follower", "koch_follower") and not same_robot("piper", "so_follower")


def test_a_lerobot_so_recording_trains_without_env_replays_on_either_so_arm_and_merges(tmp_path: Path) -> None:
    lerobot = _dataset(tmp_path / "lerobot_so", SO101, robot_type="so_follower")
    older = _dataset(tmp_path / "older_twinarm", SO101, robot_type="so101_follower",
                     twinarm_env="twinarm/SO101-Reach-v0")  # a twinarm recording from before this change
    # train without --env: SO-101, with a warning that it may be either (was: "none of twinarm's arms")
    with pytest.warns(UserWarning, match=r"robot_type 'so_follower' may be any of so101, so100 .*pass --env"):
        assert main(["train", "--policy", "act", "--dataset", str(lerobot), "--output-dir", str(tmp_path / "run"),
                     "--steps", "2", "--batch-size", "2", "--threads", "1", "--no-progress", "--eval-freq", "0",
                     *TINY_ACT]) == 0  # fmt: skip
    config = next((tmp_path / "run").glob("checkpoints/*/pretrained_model/config.json"))
    assert json.loads(config.read_text())["arm"] == "so101"
    # on the real arm (other_arm=False), SO-100 or SO-101 alike (was: refused, "not so101_follower")
    for spec in (SO101, SO100):
        state, action, fps = load_episode(str(lerobot), 0, spec, other_arm=False)
        assert state.shape == (12, 6) and fps == 30
    # twinarm's own recording still names its arm: another SO arm's is refused on the real arm
    with pytest.raises(DatasetError, match=r"recorded on the so101 arm \('so101_follower'\), not so100"):
        load_episode(str(older), 0, SO100, other_arm=False)
    # co-training and merging with an older twinarm recording (was: "robot 'so_follower' ... is 'so101_follower'")
    assert main(["dataset", "merge", str(older), str(lerobot), "--out", str(tmp_path / "merged")]) == 0
    assert recorded_arms(tmp_path / "merged") == (SO101,)  # the first source's twinarm record came along
    from twinarm.cli.dataset_cmd import info_rows

    assert dict(info_rows(str(lerobot)))["arm"] == "so101 or so100 (LeRobot names both so_follower)"
    assert dict(info_rows(str(older)))["arm"] == "so101 (recorded by twinarm)"


def test_aloha_sims_names_layout_replays_and_merges(tmp_path: Path) -> None:
    ours = _dataset(tmp_path / "ours", ALOHA, robot_type="aloha", twinarm_env="twinarm/Aloha-TransferCube-v0")
    sim = _dataset(tmp_path / "aloha_sim", ALOHA, robot_type="aloha")
    _relabel(sim, names={"motors": list(ALOHA.joint_names)})  # as LeRobot's aloha_sim_* datasets name them
    state, _, fps = load_episode(str(sim), 0, ALOHA, other_arm=False)  # was: "'observation.state' is [14] {...}"
    assert state.shape == (12, 14) and fps == 50
    assert main(["dataset", "merge", str(ours), str(sim), "--out", str(tmp_path / "merged")]) == 0
    _relabel(sim, names={"motors": list(reversed(ALOHA.joint_names))})
    with pytest.raises(DatasetError, match="arm aloha has"):  # other names are still refused
        load_episode(str(sim), 0, ALOHA)


def test_a_lerobot_koch_recording_warns_of_range_units_until_told(tmp_path: Path) -> None:
    koch = _dataset(tmp_path / "koch", KOCH, robot_type="koch_follower", scale=0.5)  # within -100..100: unknown
    with pytest.warns(LeRobotRangeUnitsWarning, match=r"Koch v1.1, whose joints LeRobot records in its -100..100 "
                      r"range unless use_degrees=true.*convert-units .*dataset units .* --set degrees"):  # fmt: skip
        load_episode(str(koch), 0, KOCH)
    with pytest.warns(LeRobotRangeUnitsWarning):
        assert main(["train", "--policy", "act", "--dataset", str(koch), "--output-dir", str(tmp_path / "run"),
                     "--steps", "1", "--batch-size", "2", "--threads", "1", "--no-progress", "--eval-freq", "0",
                     *TINY_ACT]) == 0  # fmt: skip
    assert main(["dataset", "units", str(koch), "--set", "degrees"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeRobotRangeUnitsWarning)
        load_episode(str(koch), 0, KOCH)
    assert main(["dataset", "units", str(koch), "--set", "range"]) == 0
    with pytest.raises(DatasetError, match=r"in LeRobot's -100..100 range .* convert it with `twinarm dataset "
                       r"convert-units"):  # fmt: skip
        check_range_units(koch, (KOCH,))
    # no warning where the values leave -100..100 (degrees for sure), nor for twinarm's own recordings or SO arms
    past = _dataset(tmp_path / "past", KOCH, robot_type="koch_follower", frames=40)
    ours = _dataset(tmp_path / "ours", KOCH, robot_type="koch_follower", twinarm_env="twinarm/Koch-Reach-v0", scale=0.5)
    so = _dataset(tmp_path / "so", SO101, robot_type="so_follower", scale=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeRobotRangeUnitsWarning)
        for root in (past, ours, so):
            check_range_units(root, recorded_arms(root))


def test_an_av1_video_is_described_as_lerobot_describes_it(tmp_path: Path) -> None:
    """LeRobot's merge (`aggregate_datasets`) and resume check compare features whole: twinarm's AV1 video info
    had `video.preset` "12" (LeRobot: 12) and an extra `video.is_depth_map`, so LeRobot refused to merge a twinarm
    recording with its own even at the same codec and settings."""
    fixture = Path(__file__).parents[1] / "fixtures/lerobot_v3/video_av1"  # written by lerobot 0.6.1
    theirs = json.loads((fixture / INFO_PATH).read_text())["features"]["observation.images.front"]
    ours = {"observation.images.front": {k: theirs[k] for k in ("dtype", "shape", "names")}}
    writer = DatasetWriter.create(tmp_path / "ours", 10, ours, video_codec="av1")
    rng = np.random.default_rng(0)
    for _ in range(4):
        writer.add_frame({"observation.images.front": rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)}, task="t")
    writer.save_episode()
    writer.finalize()
    assert json.loads((tmp_path / "ours" / INFO_PATH).read_text())["features"]["observation.images.front"] == theirs

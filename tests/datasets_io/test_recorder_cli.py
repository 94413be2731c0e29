"""The recorder loop (fake env, in-process and parallel workers) and the `twinarm record/dataset` commands."""

from __future__ import annotations

import functools
import json
import os

import fake_env
import numpy as np
import pytest
import torch

from twinarm.cli.main import main
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.recorder import gym_frame, record
from twinarm.datasets_io.validator import check_dataset
from twinarm.datasets_io.writer import DatasetWriter


def scale_by_ten(x: np.ndarray) -> np.ndarray:
    return x * 10.0


def test_record_in_process_only_success_with_unit_conversion(tmp_path):
    w = DatasetWriter.create(tmp_path / "ds", 10, fake_env.features(), robot_type="fake")
    s = record(fake_env.make_env, fake_env.make_policy, w, episodes=4, task="Do it.", only_success=True,
               to_frame=functools.partial(gym_frame, convert=scale_by_ten), progress=False)
    w.finalize()
    # seeds 0 and 3 fail in the fake env, so 6 rollouts give 4 successes
    assert (s.saved, s.attempted, s.successes, s.frames) == (4, 6, 4, 48)
    ds = LeRobotDatasetReader(tmp_path / "ds")
    assert len(ds) == 48 and ds[0]["task"] == "Do it."
    env = fake_env.make_env()
    obs, _ = env.reset(seed=1)  # the first kept episode
    assert torch.allclose(ds[0]["observation.state"], torch.from_numpy(obs["agent_pos"] * 10.0))
    assert torch.allclose(ds[0]["action"], torch.from_numpy(obs["agent_pos"] * 0.5 * 10.0))
    assert check_dataset(tmp_path / "ds") == []


def test_record_parallel_workers(tmp_path):
    w = DatasetWriter.create(tmp_path / "par", 10, fake_env.features(), robot_type="fake")
    s = record(fake_env.make_env, fake_env.make_policy, w, episodes=5, task="Do it.", num_workers=2,
               seed=100, progress=False)
    w.finalize()
    assert s.saved == 5 and s.frames == 60
    ds = LeRobotDatasetReader(tmp_path / "par")
    assert ds.num_episodes == 5 and check_dataset(tmp_path / "par", deep=True) == []
    # every episode is a complete rollout of one seed: frame 0 images encode that seed
    levels = sorted(int(round(float(ds[r.start]["observation.images.wrist"][0, 0, 0]) * 255))
                    for r in map(ds.episode_rows, range(5)))
    assert np.allclose(levels, sorted((s * 20 + 128) % 256 for s in range(100, 105)), atol=2)  # lossy video


def test_dataset_cli_info_check_view(tmp_path, capsys):
    from ds_helpers import write_dataset

    root = tmp_path / "ds"
    write_dataset(root, [5, 4])
    assert main(["dataset", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "episodes" in out and "9 (0.9 s)" in out and "observation.images.front" in out
    assert main(["dataset", "info", str(root), "--episodes"]) == 0  # one line per episode, e.g. to pick deletions
    out = capsys.readouterr().out
    assert "      0       5      0.5  Pick up the cube." in out
    assert "      1       4      0.4  Move the gripper to the target." in out
    assert main(["dataset", "check", str(root), "--deep"]) == 0
    assert main(["dataset", "view", str(root), "--episode", "1", "--out", str(tmp_path / "ep.png")]) == 0
    assert (tmp_path / "ep.png").stat().st_size > 1000
    assert main(["dataset", "view", str(root), "--episode", "0", "--out", str(tmp_path / "ep.mp4")]) == 0
    assert (tmp_path / "ep.mp4").stat().st_size > 1000
    (root / "meta/stats.json").write_text("[")
    capsys.readouterr()
    assert main(["dataset", "check", str(root)]) == 1
    assert "meta/stats.json" in capsys.readouterr().out


@pytest.mark.skipif(os.environ.get("MUJOCO_GL") not in ("egl", "osmesa"), reason="needs MUJOCO_GL=egl for rendering")
def test_record_cli_so101_scripted_and_resume(tmp_path):
    root = tmp_path / "so101"
    args = ["record", "--env", "twinarm/SO101-Reach-v0", "--episodes", "1", "--root", str(root),
            "--height", "32", "--width", "48", "--no-progress"]
    assert main(args) == 0
    assert main([*args, "--resume"]) == 0
    info = json.loads((root / "meta/info.json").read_text())
    assert info["total_episodes"] == 2 and info["robot_type"] == "so_follower" and info["fps"] == 30
    assert json.loads((root / "meta/twinarm_record.json").read_text())["next_seed"] == 2
    ds = LeRobotDatasetReader(root)
    assert ds[0]["task"] == "Move the gripper to the target."
    assert float(ds[0]["observation.state"].abs().max()) > 3.0  # degrees, not radians
    assert check_dataset(root) == []


def test_record_cli_state_observations(tmp_path, capsys):
    """`record --obs-type state`: joint positions and the sim's object poses, no cameras (what state policies
    train on); appending camera episodes to it (asked for by flag) is refused, naming what differs."""
    import gymnasium as gym
    import pyarrow.parquet as pq

    import twinarm  # noqa: F401
    from twinarm.datasets_io.reader import column_to_numpy

    root = tmp_path / "state"
    assert main(["record", "--env", "twinarm/SO101-PickCube-v0", "--obs-type", "state", "--episodes", "2",
                 "--root", str(root), "--no-progress"]) == 0  # fmt: skip
    assert check_dataset(root, deep=True) == []
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["features"]["observation.environment_state"]["shape"] == [7]  # the cube's position and quaternion
    assert not any(k.startswith("observation.images") for k in info["features"]) and not (root / "videos").exists()
    table = pq.read_table(next((root / "data").rglob("*.parquet")))
    env_state = column_to_numpy(table["observation.environment_state"], "observation.environment_state")
    episodes = table.column("episode_index").to_numpy()
    for episode, seed in ((0, 0), (1, 1)):  # each episode's first frame is its seed's reset
        obs, _ = gym.make("twinarm/SO101-PickCube-v0", obs_type="state").reset(seed=seed)
        np.testing.assert_allclose(env_state[episodes == episode][0], obs["environment_state"], atol=1e-6)
    with pytest.raises(SystemExit, match=r"it holds state observations \(observation.environment_state, no "
                       r"cameras\): add --obs-type state"):
        main(["record", "--env", "twinarm/SO101-PickCube-v0", "--episodes", "1", "--root", str(root), "--resume",
              "--obs-type", "pixels_agent_pos", "--no-progress"])  # fmt: skip (given: --resume alone takes state)

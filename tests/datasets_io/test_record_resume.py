"""`twinarm record` stopped and resumed: no seed is recorded twice, a failed start leaves nothing behind, and
appending refuses a dataset of another robot or codec."""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import fake_env
import numpy as np
import pytest

from twinarm.cli.main import main
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.recorder import record
from twinarm.datasets_io.writer import DatasetWriter

REACH = "twinarm/SO101-Reach-v0"
needs_gl = pytest.mark.skipif(os.environ.get("MUJOCO_GL") not in ("egl", "osmesa"), reason="needs MUJOCO_GL")


class SlowSeedZeroEnv(fake_env.FakeArmEnv):
    """The fake env, but seed 0's rollout takes long, so parallel workers finish seeds out of order."""

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed == 0:
            time.sleep(2.0)
        return super().reset(seed=seed, options=options)


def make_slow_env() -> SlowSeedZeroEnv:
    return SlowSeedZeroEnv()


def test_next_seed_is_past_every_finished_seed_when_workers_finish_out_of_order(tmp_path: Path) -> None:
    w = DatasetWriter.create(tmp_path / "par", 10, fake_env.features(), robot_type="fake")
    seen: list[int] = []
    s = record(make_slow_env, fake_env.make_policy, w, episodes=2, task="Do it.", num_workers=2,
               only_success=True, progress=False, on_seed=seen.append)  # fmt: skip
    w.finalize()
    # seed 0 is still running when seeds 1 and 2 (both successes) fill the two episodes
    assert s.saved == 2 and s.attempted == 2
    assert s.next_seed == 3 and seen == [2, 3]  # not seed + attempted == 2, which would record seed 2 again


def _episode_actions(root: Path) -> list[np.ndarray]:
    ds = LeRobotDatasetReader(root)
    return [np.stack([ds[i]["action"].numpy() for i in ds.episode_rows(e)]) for e in range(ds.num_episodes)]


@needs_gl
def test_interrupted_recording_resumes_without_repeating_a_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "reach"
    args = ["record", "--env", REACH, "--root", str(root), "--height", "32", "--width", "48", "--no-progress"]
    commit = DatasetWriter.commit
    calls = itertools.count(1)

    def commit_then_interrupt(self: DatasetWriter, episode: Any) -> int:
        if next(calls) == 3:  # Ctrl-C while the third episode is being committed
            raise KeyboardInterrupt
        return commit(self, episode)

    monkeypatch.setattr(DatasetWriter, "commit", commit_then_interrupt)
    assert main([*args, "--episodes", "5"]) == 130
    assert "2 episode(s) of this run were saved" in capsys.readouterr().err
    assert json.loads((root / "meta/twinarm_record.json").read_text())["next_seed"] == 3
    monkeypatch.setattr(DatasetWriter, "commit", commit)
    assert main([*args, "--episodes", "2", "--resume"]) == 0
    assert json.loads((root / "meta/twinarm_record.json").read_text())["next_seed"] == 5
    # the summary gives the dataset's fps and, apart, how fast the frames were recorded (not a dataset fps)
    assert re.search(r"saved 2 episode\(s\) \(\d+ frames at 30 fps, recorded at \d+ frames/s\) from 2 rollout",
                     capsys.readouterr().out)  # fmt: skip
    actions = _episode_actions(root)
    assert len(actions) == 4  # seeds 0, 1, then 3, 4 (seed 2's episode was lost to the interrupt, not repeated)
    for a, b in itertools.combinations(actions, 2):
        assert a.shape != b.shape or not np.allclose(a, b)


@needs_gl
def test_failed_start_leaves_no_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "never"
    args = ["record", "--env", REACH, "--root", str(root), "--height", "32", "--width", "48", "--no-progress",
            "--episodes", "1"]  # fmt: skip
    with pytest.raises(SystemExit):
        main([*args, "--randomization", "no-such-preset"])
    assert not root.exists()

    def fail(self: DatasetWriter, episode: Any) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(DatasetWriter, "commit", fail)
    with pytest.raises(OSError, match="disk full"):
        main(args)
    assert not root.exists()  # so the corrected command can run without --resume
    monkeypatch.undo()
    assert main(args) == 0 and LeRobotDatasetReader(root).num_episodes == 1


@needs_gl
def test_resume_refuses_another_robot_and_another_codec(tmp_path: Path) -> None:
    root = tmp_path / "so101"
    args = ["--root", str(root), "--height", "32", "--width", "48", "--no-progress", "--episodes", "1"]
    assert main(["record", "--env", REACH, *args]) == 0
    with pytest.raises(SystemExit, match="arm so101 != so100"):
        main(["record", "--env", "twinarm/SO100-Reach-v0", *args, "--resume"])
    with pytest.raises(SystemExit, match="its videos are h264"):
        main(["record", "--env", REACH, *args, "--resume", "--codec", "hevc"])
    with pytest.raises(SystemExit, match="pass --resume to append"):
        main(["record", "--env", REACH, *args])
    assert LeRobotDatasetReader(root).num_episodes == 1


def test_view_and_push_name_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ds_helpers import write_dataset

    root = tmp_path / "ds"
    write_dataset(root, [5, 4])
    assert main(["dataset", "view", str(root), "--episode", "2", "--out", str(tmp_path / "e.mp4")]) == 1
    assert "episode 2 does not exist (the dataset has episodes 0..1)" in capsys.readouterr().err
    assert main(["dataset", "view", str(root), "--episode", "0", "--out", str(tmp_path / "e.gif")]) == 1
    assert "write a .mp4" in capsys.readouterr().err and not (tmp_path / "e.gif").exists()
    with pytest.raises(SystemExit):
        main(["dataset", "push", str(root)])
    assert "--repo-id is needed" in capsys.readouterr().err


@needs_gl
def test_repo_id_is_kept_beside_the_dataset_not_in_info_json(tmp_path: Path) -> None:
    from twinarm.cli.dataset_cmd import _recorded_repo_id

    root = tmp_path / "so101"
    assert main(["record", "--env", REACH, "--root", str(root), "--height", "32", "--width", "48", "--no-progress",
                 "--episodes", "1", "--repo-id", "me/so101_reach"]) == 0  # fmt: skip
    assert "repo_id" not in json.loads((root / "meta/info.json").read_text())  # LeRobot warns on unknown fields
    assert _recorded_repo_id(root) == "me/so101_reach"  # `dataset push` defaults to it


@needs_gl
def test_resume_alone_appends_as_the_dataset_was_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`record --root R --resume` took the defaults for what it did not repeat: a 24x32 recording refused its own
    --resume ('its images are 24x32: pass --height 24 --width 32'), a state one asked for --obs-type state, and
    another --env was compared instead of the recording's. Now the recording's options are taken, as it says."""
    small, state = tmp_path / "small", tmp_path / "state"
    assert main(["record", "--env", REACH, "--root", str(small), "--episodes", "1", "--height", "24", "--width", "32",
                 "--no-progress"]) == 0  # fmt: skip
    assert main(["record", "--env", REACH, "--root", str(state), "--episodes", "1", "--obs-type", "state",
                 "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["record", "--root", str(small), "--resume", "--episodes", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"--resume: with the recording's own --env {REACH}, --height 24, --width 32" in out
    assert LeRobotDatasetReader(small).num_episodes == 2
    assert main(["record", "--root", str(state), "--resume", "--episodes", "1", "--no-progress"]) == 0
    assert f"--resume: with the recording's own --env {REACH}, --obs-type state" in capsys.readouterr().out
    assert LeRobotDatasetReader(state).num_episodes == 2
    saved = json.loads((small / "meta/twinarm_record.json").read_text())
    assert (saved["height"], saved["width"], saved["resume"], saved["next_seed"]) == (24, 32, True, 2)

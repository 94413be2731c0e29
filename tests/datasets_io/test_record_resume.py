"""`twinarm record` stopped and resumed: no seed is recorded twice, a failed start leaves nothing behind, and
appending refuses a dataset of another robot or codec."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from twinarm.cli.main import main
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.writer import DatasetWriter

REACH = "twinarm/SO101-Reach-v0"
needs_gl = pytest.mark.skipif(os.environ.get("MUJOCO_GL") not in ("egl", "osmesa"), reason="needs MUJOCO_GL")


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
    saved = json.loads((root / "meta/twinarm_record.json").read_text())
    assert saved["next_seed"] == 3 and saved["sessions"] == [{"seed": 0, "episodes": 2, "first_episode_index": 0}]
    monkeypatch.setattr(DatasetWriter, "commit", commit)
    assert main([*args, "--episodes", "2", "--resume"]) == 0
    saved = json.loads((root / "meta/twinarm_record.json").read_text())
    assert saved["next_seed"] == 5 and saved["sessions"][1] == {"seed": 3, "episodes": 2, "first_episode_index": 2}
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
    assert (saved["height"], saved["width"], saved["next_seed"]) == (24, 32, 2)
    assert saved["sessions"] == [{"seed": 0, "episodes": 1, "first_episode_index": 0},
                                 {"seed": 1, "episodes": 1, "first_episode_index": 1}]  # fmt: skip


def _data(root: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa.concat_tables(pq.read_table(f) for f in sorted((root / "data").rglob("*.parquet")))


@needs_gl
def test_the_saved_recording_relaunches_with_config(tmp_path: Path) -> None:
    """meta/twinarm_record.json is a `record --config` file (audit F6): its bookkeeping (next_seed, sessions) is
    skipped, and the options with the seed used record the same dataset again."""
    first = tmp_path / "first"
    assert main(["record", "--env", REACH, "--obs-type", "state", "--episodes", "2", "--seed", "3", "--root",
                 str(first), "--no-progress"]) == 0  # fmt: skip
    saved = json.loads((first / "meta/twinarm_record.json").read_text())
    assert (saved["seed"], saved["episodes"], saved["next_seed"]) == (3, 2, 5)
    assert saved["sessions"] == [{"seed": 3, "episodes": 2, "first_episode_index": 0}]
    again = tmp_path / "again"
    assert main(["record", "--config", str(first / "meta/twinarm_record.json"), "--root", str(again)]) == 0
    assert _data(again).equals(_data(first))
    assert json.loads((again / "meta/twinarm_record.json").read_text()) == {**saved, "root": str(again)}
    with pytest.raises(SystemExit, match="a dataset is already there"):  # the file's own --root: not appended to
        main(["record", "--config", str(first / "meta/twinarm_record.json")])


@needs_gl
def test_resume_keeps_each_runs_seed_and_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A `--resume` run no longer overwrites the first run's seed and count with its own (`"seed": null`): the
    options stay the first run's, and `sessions` lists every run's seed, count and first episode, with the kept
    seeds where --only-success could skip some and the options a run changed (which the next --resume takes)."""
    root = tmp_path / "reach"
    args = ["record", "--root", str(root), "--no-progress"]
    assert main([*args, "--env", REACH, "--obs-type", "state", "--episodes", "2", "--seed", "3"]) == 0
    assert main([*args, "--resume", "--episodes", "1", "--only-success"]) == 0
    capsys.readouterr()
    assert main([*args, "--resume", "--episodes", "1"]) == 0
    assert "--only-success" in capsys.readouterr().out  # taken from the last run, not the first
    saved = json.loads((root / "meta/twinarm_record.json").read_text())
    assert (saved["seed"], saved["episodes"], saved["resume"], saved["only_success"]) == (3, 2, False, False)
    assert saved["sessions"] == [
        {"seed": 3, "episodes": 2, "first_episode_index": 0},
        {"seed": 5, "episodes": 1, "first_episode_index": 2, "seeds": [5], "options": {"only_success": True}},
        {"seed": 6, "episodes": 1, "first_episode_index": 3, "seeds": [6], "options": {"only_success": True}},
    ]
    assert saved["next_seed"] == 7 and LeRobotDatasetReader(root).num_episodes == 4
    # An explicit --seed below the seeds used (say, from `--config` of this file) records their scenes again: said.
    assert main([*args, "--resume", "--episodes", "1", "--seed", "4"]) == 0
    assert "--seed 4 on a dataset whose runs used seeds up to 6" in capsys.readouterr().err


@needs_gl
def test_an_episode_committed_as_the_run_was_killed_is_counted_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after an episode's files were swapped in but before the file counted it: the next --resume counts
    it in the killed run's entry (its seed is the one written before the commit) and records from the seed after."""
    root = tmp_path / "reach"
    args = ["record", "--env", REACH, "--obs-type", "state", "--root", str(root), "--no-progress"]
    commit = DatasetWriter.commit
    calls = itertools.count(1)

    def commit_then_interrupt(self: DatasetWriter, episode: Any) -> int:
        index = commit(self, episode)
        if next(calls) == 2:
            raise KeyboardInterrupt
        return index

    monkeypatch.setattr(DatasetWriter, "commit", commit_then_interrupt)
    assert main([*args, "--episodes", "3"]) == 130
    saved = json.loads((root / "meta/twinarm_record.json").read_text())
    assert saved["next_seed"] == 2 and saved["sessions"] == [{"seed": 0, "episodes": 1, "first_episode_index": 0}]
    monkeypatch.undo()
    assert main([*args, "--episodes", "1", "--resume"]) == 0
    saved = json.loads((root / "meta/twinarm_record.json").read_text())
    assert saved["next_seed"] == 3 and saved["sessions"] == [{"seed": 0, "episodes": 2, "first_episode_index": 0},
                                                              {"seed": 2, "episodes": 1, "first_episode_index": 2}]

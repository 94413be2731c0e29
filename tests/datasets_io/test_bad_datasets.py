"""Broken datasets: `twinarm dataset check` names the file, field and episode at fault, once (not the follow-on
problems it causes), and `dataset info` / the reader say what a folder that is no dataset yet, a file or a bare
name is, without going to the Hub."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ds_helpers import FPS, feats, write_dataset

from twinarm.cli.main import main
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.meta import DatasetMeta
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.validator import NoActionWarning, check_dataset
from twinarm.datasets_io.writer import DatasetWriter, check_version

EPISODES = "meta/episodes/chunk-000/file-000.parquet"
LEROBOT_PYTHON = Path(os.environ.get("TWINARM_LEROBOT_PYTHON", "/root/lerobot-venv/bin/python"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three episodes (12, 7, 15 frames): video front camera, PNG wrist camera."""
    root = tmp_path_factory.mktemp("bad") / "ds"
    write_dataset(root, [12, 7, 15])
    assert check_dataset(root) == []
    return root


def _copy(clean: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(clean, root)
    return root


def _edit_info(root: Path, **changes: object) -> dict:
    info = json.loads((root / "meta/info.json").read_text())
    info.update(changes)
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    return info


def test_a_data_column_info_json_does_not_declare_is_named(clean: Path, tmp_path: Path) -> None:
    root = _copy(clean, tmp_path)
    info = json.loads((root / "meta/info.json").read_text())
    del info["features"]["observation.state"]  # train would go on without state, silently
    _edit_info(root, features=info["features"])
    problems = check_dataset(root)
    assert problems == ["data/chunk-000/file-000.parquet: column 'observation.state' is not a feature in "
                        "meta/info.json, so readers leave it out: declare it under features there, or remove the "
                        "column"]  # fmt: skip


def test_a_wrong_total_episodes_is_said_before_the_splits_it_disagrees_with(clean: Path, tmp_path: Path) -> None:
    root = _copy(clean, tmp_path)
    _edit_info(root, total_episodes=5)  # splits.train stays '0:3', as the three rows say
    assert check_dataset(root) == ["meta/info.json: total_episodes is 5 but meta/episodes has 3 rows"]
    _edit_info(root, total_episodes=3, splits={"train": "0:2"})
    assert check_dataset(root) == ["meta/info.json: splits.train should be '0:3' (the 3 episodes), got '0:2'"]


def test_an_episode_running_past_the_data_is_named_not_info_json(clean: Path, tmp_path: Path) -> None:
    root = _copy(clean, tmp_path)
    table = pq.read_table(root / EPISODES)
    to = table.column("dataset_to_index").to_pylist()
    length = table.column("length").to_pylist()
    to[2], length[2] = 60, 60 - 19  # episode 2 (rows 19..33) now claims rows up to 60
    table = table.set_column(table.schema.get_field_index("dataset_to_index"), "dataset_to_index",
                             pa.array(to, pa.int64()))
    table = table.set_column(table.schema.get_field_index("length"), "length", pa.array(length, pa.int64()))
    pq.write_table(table, root / EPISODES)
    assert check_dataset(root) == [f"{EPISODES}: episode 2: dataset_to_index 60 runs past the data, whose files "
                                   "hold 34 rows"]  # fmt: skip
    # where meta/episodes and info.json agree, the data is what lost rows
    short = _copy(clean, tmp_path / "short")
    data = short / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(data).slice(0, 30), data)
    assert check_dataset(short) == ["data: the data files hold 30 rows but meta/episodes and info.json total_frames "
                                    "say 34: rows are missing from the data"]  # fmt: skip


def test_an_fps_the_videos_and_timestamps_disagree_with_is_one_line(clean: Path, tmp_path: Path) -> None:
    root = _copy(clean, tmp_path)
    _edit_info(root, fps=FPS // 2)  # videos (video.fps) and timestamps are at FPS
    assert check_dataset(root) == [
        f"meta/info.json: fps {FPS // 2} disagrees with video.fps {FPS} and the timestamps' spacing (1/{FPS} s): if "
        f"the episodes were recorded at {FPS} fps, set fps to {FPS} in meta/info.json"
    ]


def test_a_truncated_stats_json_is_one_problem(clean: Path, tmp_path: Path) -> None:
    root = _copy(clean, tmp_path)
    text = (root / "meta/stats.json").read_text()
    (root / "meta/stats.json").write_text(text[: len(text) // 2])
    problems = check_dataset(root)
    assert len(problems) == 1 and problems[0].startswith("meta/stats.json: corrupt JSON"), problems


def test_a_dataset_without_action_passes_with_a_warning_naming_it(tmp_path: Path, clean: Path) -> None:
    """Observation-only datasets exist, so no `action` is no problem; but no policy trains on one (audit B12)."""
    root = tmp_path / "watch"
    w = DatasetWriter.create(root, FPS, {"observation.state": feats()["observation.state"]}, robot_type="test_arm")
    for t in range(4):
        w.add_frame({"observation.state": np.full(3, t, np.float32)}, task="Watch.")
    w.save_episode()
    w.finalize()
    with pytest.warns(NoActionWarning, match=re.escape(f"{root}: has no 'action' feature, so no LeRobot policy can train")):
        assert check_dataset(root) == []
    run = subprocess.run([sys.executable, "-m", "twinarm.cli.main", "dataset", "check", str(root)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == f"{root}: OK (LeRobot v3.0 rules)", run
    assert run.stderr.strip() == f"twinarm: warning: {root}: has no 'action' feature, so no LeRobot policy can " \
        "train on it (fine for an observation-only dataset)", run.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoActionWarning)
        assert check_dataset(clean) == []  # a dataset with `action` gets no warning


def test_a_recording_killed_before_its_first_episode_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                             ) -> None:  # fmt: skip
    root = tmp_path / "killed"
    DatasetWriter.create(root, FPS, feats(), robot_type="test_arm").finalize()  # info.json, no episode
    said = (f"no episode was committed (an interrupted recording?); `twinarm record --root {root} --resume` (or "
            f"`twinarm teleop ... --record {root} --resume`) continues it")
    with pytest.raises(DatasetError) as exc:
        LeRobotDatasetReader(root)  # what `train --dataset` opens
    assert str(exc.value) == f"{root}: {said}"
    assert main(["dataset", "info", str(root)]) == 1
    assert said in capsys.readouterr().err
    assert check_dataset(root) == [said]


def test_info_and_check_on_a_bare_name_or_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], clean: Path) -> None:  # fmt: skip
    import twinarm.datasets_io.hub as hub

    def offline(*args: object, **kwargs: object) -> None:
        raise AssertionError("went to the Hub")

    monkeypatch.setattr(hub, "download", offline)
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "info", "nonexist_ds"]) == 1
    assert "nonexist_ds: no such dataset directory (a Hub dataset is named OWNER/NAME)" in capsys.readouterr().err
    info = clean / "meta/info.json"
    for action in ("info", "check"):
        assert main(["dataset", action, str(info)]) == 1
        assert (f"{info} is a file, not a dataset folder; give the folder that holds meta/info.json ({clean}?)"
                in capsys.readouterr().err)
    assert main(["dataset", "check", "nonexist_ds"]) == 1
    assert "nonexist_ds: no such dataset directory" in capsys.readouterr().err


def test_a_lerobot_v21_dataset_is_refused_with_the_conversion_command_that_runs(tmp_path: Path) -> None:
    root = tmp_path / "old"
    with pytest.raises(DatasetError) as exc:
        check_version({"codebase_version": "v2.1"}, root / "meta/info.json")
    command = (f"python -m lerobot.scripts.convert_dataset_v21_to_v30 --repo-id OWNER/NAME --root {root} "
               "--push-to-hub=false")
    assert f"`{command}`" in str(exc.value)
    write_dataset(root, [3])
    _edit_info(root, codebase_version="v2.1")
    with pytest.raises(DatasetError, match="convert_dataset_v21_to_v30"):
        DatasetMeta(root)
    if not LEROBOT_PYTHON.exists():
        pytest.skip(f"no LeRobot at {LEROBOT_PYTHON} (TWINARM_LEROBOT_PYTHON) to check the command against")
    module = command.split()[2]
    origin = subprocess.run([str(LEROBOT_PYTHON), "-c", f"import importlib.util as u; print(u.find_spec({module!r}).origin)"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    source = Path(origin).read_text()
    for flag in ("--repo-id", "--root", "--push-to-hub"):
        assert f'"{flag}"' in source, flag

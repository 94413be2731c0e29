"""`twinarm dataset split|remove-feature|rename-feature|modify-tasks`: copies that pass the checks and read, frame for frame,
as the source's frames they keep, on twinarm-written and LeRobot-written datasets; bad requests name what is
wrong and write nothing."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from ds_helpers import write_dataset

from twinarm.cli.main import main
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.remove_feature import remove_features
from twinarm.datasets_io.rename_feature import rename_features
from twinarm.datasets_io.retask import modify_tasks
from twinarm.datasets_io.split import split_dataset, split_episodes
from twinarm.datasets_io.validator import check_dataset

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lerobot_v3"
LENGTHS = [6, 4, 5, 7, 3]
TASKS = ["Pick up the cube.", "Move the gripper to the target."]  # write_dataset alternates them


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def episode_frames(reader: LeRobotDatasetReader, episode: int, keys: list[str]) -> list[dict[str, torch.Tensor]]:
    rows = [i for i in range(len(reader)) if int(reader[i]["episode_index"]) == episode]
    return [{k: reader[i][k] for k in keys} for i in rows]


def assert_same_frames(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b) and a
    for x, y in zip(a, b, strict=True):
        for k in x:
            assert torch.equal(x[k], y[k]) if isinstance(x[k], torch.Tensor) else x[k] == y[k], k


@pytest.fixture
def src(tmp_path: Path) -> Path:
    write_dataset(tmp_path / "src", LENGTHS)
    return tmp_path / "src"


def test_split_by_fraction_and_by_episodes(src: Path, tmp_path: Path) -> None:
    before = digest(src)
    written = split_dataset(src, tmp_path / "split", {"train": 0.6, "val": 0.2, "test": 0.2})
    assert {n: eps for n, (_, eps, _) in written.items()} == {"train": [0, 1, 2], "val": [3], "test": [4]}
    assert digest(src) == before
    old = LeRobotDatasetReader(src)
    keys = ["observation.state", "action", "observation.images.front", "observation.images.wrist", "timestamp", "task"]
    for path, eps, notes in written.values():
        assert notes == [] and check_dataset(path, deep=True) == []
        new = LeRobotDatasetReader(path)
        assert len(new) == sum(LENGTHS[e] for e in eps)
        for i, e in enumerate(eps):
            assert_same_frames(episode_frames(new, i, keys), episode_frames(old, e, keys))
        stats = json.loads((path / "meta" / "stats.json").read_text())
        state = np.concatenate([np.stack([f["observation.state"].numpy() for f in episode_frames(old, e, keys)]) for e in eps])
        np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(0), rtol=1e-5, atol=1e-6)
    # Episodes by index, in any order; the CLI prints what went where.
    assert split_episodes(5, {"a": [4, 0], "b": [2]}) == {"a": [0, 4], "b": [2]}
    assert main(["dataset", "split", str(src), "--out", str(tmp_path / "cli"), "--splits", "a=0-1,4", "b=2-3"]) == 0
    assert json.loads((tmp_path / "cli" / "a" / "meta" / "info.json").read_text())["total_frames"] == 6 + 4 + 3


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        ({"a": 0.7, "b": 0.5}, "sum to at most 1"),
        ({"a": 0.5, "b": [3]}, "every split as a fraction"),
        ({"a": [0, 1], "b": [1, 2]}, r"split 'b' shares episodes with \['a'\]"),
        ({"a": [0, 9]}, r"split 'a': episode\(s\) \[9\] do not exist"),
        ({"a": 0.1, "b": 0.9}, "split 'a' has no episodes"),
        ({"all": [0, 1, 2, 3, 4]}, "holds every episode"),
    ],
)
def test_bad_splits_are_refused(splits: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        split_episodes(5, splits)


def test_remove_a_camera_and_a_state_key(src: Path, tmp_path: Path) -> None:
    out = remove_features(src, tmp_path / "out", ["observation.images.front", "observation.state"])
    assert check_dataset(out, deep=True) == []
    info = json.loads((out / "meta" / "info.json").read_text())
    assert "observation.images.front" not in info["features"] and "observation.state" not in info["features"]
    assert info["video_path"] is None and not (out / "videos").exists()
    episodes = pq.read_table(next((out / "meta" / "episodes").rglob("*.parquet"))).column_names
    assert not [c for c in episodes if "images.front" in c or c.startswith("stats/observation.state/")]
    assert "observation.state" not in json.loads((out / "meta" / "stats.json").read_text())
    old, new = LeRobotDatasetReader(src), LeRobotDatasetReader(out)
    keys = ["action", "observation.images.wrist", "timestamp", "index"]
    assert_same_frames([{k: new[i][k] for k in keys} for i in range(len(new))], [{k: old[i][k] for k in keys} for i in range(len(old))])
    with pytest.raises(DatasetError, match=r"no feature\(s\) \['observation.images.top'\]; its features"):
        remove_features(src, tmp_path / "x", ["observation.images.top"])
    with pytest.raises(DatasetError, match="cannot be removed"):
        remove_features(src, tmp_path / "x", ["task_index"])
    with pytest.raises(DatasetError, match=f"^{re.escape(str(src))}: cannot remove 'action': .*no policy could train on the copy"):
        remove_features(src, tmp_path / "x", ["observation.images.front", "action"])
    assert not (tmp_path / "x").exists()


def test_rename_a_lerobot_recordings_cameras_to_the_sims(tmp_path: Path, capsys) -> None:
    """LeRobot's own recording (a video camera, an image camera) with its cameras under the sim's names: the same
    frames under the new keys, videos moved (byte-identical), stats and per-episode columns renamed."""
    src = FIXTURES / "video_h264"
    renames = {"observation.images.front": "observation.images.top", "observation.images.wrist": "observation.images.hand"}
    assert main(["dataset", "rename-feature", str(src), str(tmp_path / "out"), "--rename",
                 *[f"{a}={b}" for a, b in renames.items()]]) == 0  # fmt: skip
    out = tmp_path / "out"
    assert "observation.images.front as observation.images.top" in capsys.readouterr().out
    assert check_dataset(out, deep=True) == []
    info = json.loads((out / "meta" / "info.json").read_text())
    assert list(info["features"]) == [renames.get(k, k) for k in json.loads((src / "meta" / "info.json").read_text())["features"]]
    moved = {p.relative_to(out / "videos" / "observation.images.top") for p in (out / "videos").rglob("*.mp4")}
    assert moved and all(digest(out / "videos" / "observation.images.top")[str(m)] ==
                         digest(src / "videos" / "observation.images.front")[str(m)] for m in moved)  # fmt: skip
    assert set(json.loads((out / "meta" / "stats.json").read_text())) >= set(renames.values())
    episodes = pq.read_table(next((out / "meta" / "episodes").rglob("*.parquet"))).column_names
    assert not [c for c in episodes if "images.front" in c or "images.wrist" in c]
    assert "videos/observation.images.top/chunk_index" in episodes and "stats/observation.images.hand/mean" in episodes
    old, new = LeRobotDatasetReader(src), LeRobotDatasetReader(out)
    for i in range(len(old)):
        for a, b in [*renames.items(), ("observation.state", "observation.state")]:
            assert torch.equal(old[i][a], new[i][b]), (i, a)
    for bad, said in [({"observation.images.top": "observation.images.x"}, "no feature 'observation.images.top'"),
                      ({"observation.images.front": "front"}, "its new key must start with 'observation.images.'"),
                      ({"observation.state": "observation.images.s"}, "is no camera"),
                      ({"index": "idx"}, "'index' is one every LeRobot dataset has"),
                      ({"action": "act"}, "'action' is what every LeRobot policy learns to output"),
                      ({"observation.images.front": "observation.images.wrist"}, "two features would be")]:  # fmt: skip
        with pytest.raises(DatasetError, match=said):
            rename_features(src, tmp_path / "x", bad)
    assert not (tmp_path / "x").exists()


def test_modify_tasks_as_lerobot_resolves_them(src: Path, tmp_path: Path, capsys) -> None:
    out, tasks = modify_tasks(src, tmp_path / "out", new_task="Lift it.", episode_tasks={3: "Push the cube."},
                              replacements={TASKS[1]: "Reach the target."})  # fmt: skip
    assert check_dataset(out, deep=True) == []
    # Episode 3: its own text; 1 (task 1): the replacement; 0, 2, 4 (task 0, no replacement): the default.
    want = ["Lift it.", "Reach the target.", "Lift it.", "Push the cube.", "Lift it."]
    assert tasks == ["Lift it.", "Reach the target.", "Push the cube."]
    new = LeRobotDatasetReader(out)
    assert [episode_frames(new, e, ["task"])[0]["task"] for e in range(5)] == want
    eps = pq.read_table(next((out / "meta" / "episodes").rglob("*.parquet")))
    assert eps.column("tasks").to_pylist() == [[t] for t in want]
    assert json.loads((out / "meta" / "info.json").read_text())["total_tasks"] == 3
    assert json.loads((out / "meta" / "stats.json").read_text())["task_index"]["max"] == [2]
    with pytest.raises(DatasetError, match=r"no task 'Fly\.' to replace; its tasks"):
        modify_tasks(src, tmp_path / "x", replacements={"Fly.": "Walk."})
    with pytest.raises(DatasetError, match=r"episode\(s\) \[8\] do not exist"):
        modify_tasks(src, tmp_path / "x", episode_tasks={8: "A."})
    assert not (tmp_path / "x").exists()
    assert main(["dataset", "modify-tasks", str(src), str(tmp_path / "cli"), "--replace", f"{TASKS[0]}=Lift=it."]) == 0
    assert "0: 'Lift=it.'" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["video_av1", "depth"])
def test_lerobot_written_datasets(name: str, tmp_path: Path) -> None:
    """LeRobot 0.6.1's own recordings (AV1 video and PNG images; a 12-bit depth video and TIFF depth images)."""
    src = FIXTURES / name
    old = LeRobotDatasetReader(src)
    keys = [k for k in old.features if k not in ("index", "episode_index", "task_index")]
    written = split_dataset(src, tmp_path / "split", {"a": [0], "b": [1]})
    for path, eps, _ in written.values():
        assert check_dataset(path, deep=True) == []
        assert_same_frames(episode_frames(LeRobotDatasetReader(path), 0, keys), episode_frames(old, eps[0], keys))
    camera = next(k for k in old.features if old.features[k]["dtype"] == "video")
    out = remove_features(src, tmp_path / "rm", [camera])
    assert check_dataset(out, deep=True) == []
    rest = [k for k in keys if k != camera]
    new = LeRobotDatasetReader(out)
    assert_same_frames([{k: new[i][k] for k in rest} for i in range(len(new))], [{k: old[i][k] for k in rest} for i in range(len(old))])
    out, _ = modify_tasks(src, tmp_path / "retask", new_task="Something else.")
    assert check_dataset(out, deep=True) == [] and {LeRobotDatasetReader(out)[i]["task"] for i in range(3)} == {"Something else."}


def test_images_become_videos(tmp_path: Path, capsys) -> None:
    """Smooth PNG frames encode to H.264 that decodes close to them; everything else reads as before."""
    from ds_helpers import FPS, H, W, front_image

    from twinarm.datasets_io.to_video import images_to_video
    from twinarm.datasets_io.writer import DatasetWriter

    src = tmp_path / "png"
    feats = {"observation.state": {"dtype": "float32", "shape": [2], "names": ["a", "b"]},
             "action": {"dtype": "float32", "shape": [2], "names": ["a", "b"]},
             "observation.images.front": {"dtype": "image", "shape": [H, W, 3], "names": ["height", "width", "channels"]}}
    w = DatasetWriter.create(src, FPS, feats, robot_type="test_arm")
    for e, n in enumerate(LENGTHS):
        for t in range(n):
            w.add_frame({"observation.state": np.array([e, t], np.float32), "action": np.array([t, e], np.float32),
                         "observation.images.front": front_image(e, t)}, task=TASKS[e % 2])
        w.save_episode()
    w.finalize()
    out, keys = images_to_video(src, tmp_path / "mp4")
    assert keys == ["observation.images.front"] and check_dataset(out, deep=True) == []
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.front"]["dtype"] == "video"
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    assert "observation.images.front" not in pq.read_table(next((out / "data").rglob("*.parquet"))).column_names
    old, new = LeRobotDatasetReader(src), LeRobotDatasetReader(out)
    frames = [old[i]["observation.images.front"] for i in range(len(old))]
    for i in range(len(old)):
        x, y = old[i], new[i]
        assert torch.equal(x["observation.state"], y["observation.state"]) and x["task"] == y["task"]
        # Each decoded frame is closest to its own PNG (within ~5 of 255 levels), not to its neighbours.
        err = [(f - y["observation.images.front"]).abs().mean().item() for f in frames]
        assert err[i] < 0.025 and int(np.argmin(err)) == i, (i, err[i], int(np.argmin(err)))
    with pytest.raises(DatasetError, match=r"\['observation.state'\] are not colour image features"):
        images_to_video(src, tmp_path / "x", ["observation.state"])
    with pytest.raises(DatasetError, match="no colour image features"):
        images_to_video(out, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    # LeRobot's own PNG dataset, through the CLI.
    assert main(["dataset", "convert-to-video", str(FIXTURES / "images"), str(tmp_path / "lr")]) == 0
    assert "observation.images.wrist as h264 video" in capsys.readouterr().out
    assert check_dataset(tmp_path / "lr", deep=True) == []

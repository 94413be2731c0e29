"""Format corners LeRobot datasets have: AV1 videos (written and appended to), shape-[1] features such as
`next.reward`, one-channel images, the tasks table's pandas index, and an info.json with LeRobot's fields only;
a commit that fails midway, and a truncated video as the checks and the reader name it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ds_helpers import front_image, psnr, write_dataset

from twinarm.datasets_io.layout import INFO_PATH, TASKS_PATH, TMP_MARK, DatasetError, load_json
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.validator import check_dataset
from twinarm.datasets_io.writer import DatasetWriter

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lerobot_v3"


def test_av1_dataset_is_written_and_read_back(tmp_path: Path) -> None:
    root = tmp_path / "av1"
    rec = write_dataset(root, [6, 5], video_codec="av1")  # two episodes: the second is remuxed after the first
    assert load_json(root / INFO_PATH)["features"]["observation.images.front"]["info"]["video.codec"] == "av1"
    assert check_dataset(root, deep=True) == []
    ds = LeRobotDatasetReader(root)
    got = ds[8]["observation.images.front"].numpy().transpose(1, 2, 0) * 255
    assert psnr(got, rec["front"][8]) > 25


def test_appending_to_a_lerobot_av1_dataset(tmp_path: Path) -> None:
    root = tmp_path / "lerobot_av1"
    shutil.copytree(FIXTURES / "video_av1", root)
    before = LeRobotDatasetReader(root).num_episodes
    w = DatasetWriter.resume(root)
    for t in range(4):
        w.add_frame({"observation.state": np.zeros(3, np.float32), "action": np.ones(3, np.float32),
                     "observation.images.wrist": np.zeros((16, 24, 3), np.uint8),
                     "observation.images.front": front_image(7, t)}, task="Appended.")  # fmt: skip
    w.save_episode()
    w.finalize()
    assert check_dataset(root, deep=True) == []
    ds = LeRobotDatasetReader(root)
    assert ds.num_episodes == before + 1 and ds[len(ds) - 1]["task"] == "Appended."


def _reward_features() -> dict:
    return {"observation.state": {"dtype": "float32", "shape": [2], "names": None},
            "next.reward": {"dtype": "float32", "shape": [1], "names": None},
            "next.done": {"dtype": "bool", "shape": [1], "names": None}}  # fmt: skip


def test_shape_one_features_are_plain_columns_and_resume(tmp_path: Path) -> None:
    root = tmp_path / "reward"
    w = DatasetWriter.create(root, 30, _reward_features())
    for t in range(5):
        w.add_frame({"observation.state": np.zeros(2, np.float32), "next.reward": np.float32(t),
                     "next.done": np.array([t == 4])}, task="x")  # fmt: skip
    w.save_episode()
    w.finalize()
    w = DatasetWriter.resume(root)
    for t in range(3):
        w.add_frame({"observation.state": np.ones(2, np.float32), "next.reward": np.float32(10 + t),
                     "next.done": np.array([False])}, task="y")  # fmt: skip
    w.save_episode()
    w.finalize()
    schema = pq.read_schema(next((root / "data").rglob("*.parquet")))
    assert schema.field("next.reward").type == pa.float32() and schema.field("next.done").type == pa.bool_()
    assert check_dataset(root, deep=True) == []
    ds = LeRobotDatasetReader(root)
    assert [float(ds[i]["next.reward"]) for i in range(8)] == [0, 1, 2, 3, 4, 10, 11, 12]
    assert bool(ds[4]["next.done"]) and ds[4]["next.reward"].shape == ()  # a scalar, as LeRobot returns it
    assert not list(root.rglob("*twinarm-tmp*"))


def test_one_channel_images_keep_one_channel(tmp_path: Path) -> None:
    root = tmp_path / "depth"
    w = DatasetWriter.create(root, 30, {
        "observation.images.depth": {"dtype": "image", "shape": [8, 10, 1], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [2], "names": None}})  # fmt: skip
    for t in range(4):
        w.add_frame({"observation.images.depth": np.full((8, 10, 1), 40 * t, np.uint8),
                     "observation.state": np.zeros(2, np.float32)}, task="x")  # fmt: skip
    w.save_episode()
    w.finalize()
    img = LeRobotDatasetReader(root)[2]["observation.images.depth"]
    assert tuple(img.shape) == (1, 8, 10) and abs(float(img.max()) - 80 / 255) < 1e-6


def test_tasks_table_needs_task_as_pandas_index(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_dataset(root, [3], video=False)
    tasks = pq.read_table(root / TASKS_PATH)
    assert tasks.schema.pandas_metadata["index_columns"] == ["task"] and check_dataset(root) == []
    plain = pa.table({"task_index": tasks.column("task_index"), "task": tasks.column("task")})  # no pandas index
    pq.write_table(plain, root / TASKS_PATH)
    problems = check_dataset(root)
    assert len(problems) == 1 and "'task' must be the pandas index" in problems[0]


def test_info_json_holds_only_lerobot_fields(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_dataset(root, [2], video=False)
    assert set(load_json(root / INFO_PATH)) == {
        "codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks", "chunks_size",
        "data_files_size_in_mb", "video_files_size_in_mb", "data_path", "video_path", "robot_type", "splits"}  # fmt: skip


def test_repo_id_left_in_info_json_by_older_versions_is_dropped_on_resume(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_dataset(root, [2], video=False)
    info = load_json(root / INFO_PATH)
    (root / INFO_PATH).write_text(json.dumps({**info, "repo_id": "me/old"}))  # as twinarm record --repo-id wrote it
    w = DatasetWriter.resume(root)
    w.add_frame({"observation.state": np.zeros(3, np.float32), "action": np.zeros(3, np.float32),
                 "observation.images.wrist": np.zeros((16, 24, 3), np.uint8)}, task="x")  # fmt: skip
    w.save_episode()
    w.finalize()
    assert "repo_id" not in load_json(root / INFO_PATH) and check_dataset(root) == []


def test_a_failed_commit_leaves_no_temp_files_and_the_next_episode_saves(tmp_path: Path, monkeypatch) -> None:
    import twinarm.datasets_io.writer as writer_mod

    root = tmp_path / "ds"
    write_dataset(root, [3])
    w = DatasetWriter.resume(root)

    def add(n: int, task: str) -> None:
        for t in range(n):
            w.add_frame({"observation.state": np.full(3, t, np.float32), "action": np.zeros(3, np.float32),
                         "observation.images.wrist": np.zeros((16, 24, 3), np.uint8),
                         "observation.images.front": front_image(1, t)}, task=task)  # fmt: skip

    def failing_concatenate(episodes: list, out_path: Path, fps: int) -> None:
        out_path.write_bytes(b"half an mp4")
        raise OSError("No space left on device")

    add(4, "A new task.")  # the tasks table and the data file are staged before the video
    monkeypatch.setattr(writer_mod, "concatenate", failing_concatenate)
    with pytest.raises(OSError, match="No space"):
        w.save_episode()
    monkeypatch.undo()
    assert not list(root.rglob(f"*{TMP_MARK}*"))
    assert check_dataset(root, deep=True) == [] and LeRobotDatasetReader(root).num_frames == 3
    with pytest.warns(UserWarning, match="dropped the 4-frame episode whose save failed"):
        add(2, "Another task.")  # the failed episode must not reappear in the files of the next one
    assert w.save_episode() == 1
    w.finalize()
    assert check_dataset(root, deep=True) == []
    ds = LeRobotDatasetReader(root)
    assert (ds.num_episodes, len(ds), ds.meta.tasks) == (2, 5, ["Pick up the cube.", "Another task."])


def test_a_truncated_video_is_named_as_short_by_the_deep_check_and_the_reader(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_dataset(root, [6, 5])
    mp4 = next((root / "videos").rglob("*.mp4"))
    data = mp4.read_bytes()
    mp4.write_bytes(data[: int(len(data) * 0.9)])  # the index (moov) is up front: the last frames' packets go
    shallow = check_dataset(root)
    assert shallow and all("the video has fewer frames than the data" in p for p in shallow)
    deep = check_dataset(root, deep=True)
    assert set(shallow) < set(deep)  # deep reports the decoding error as well, not instead
    assert any("decoding fails after" in p for p in deep)
    with pytest.raises(DatasetError, match="the video has fewer frames than the data"):
        LeRobotDatasetReader(root)[10]


def test_deep_check_says_ok_without_a_stray_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from twinarm.cli.main import main

    root = tmp_path / "ds"
    write_dataset(root, [2], video=False)
    assert main(["dataset", "check", "--deep", str(root)]) == 0
    assert "(LeRobot v3.0 rules, every frame decoded)" in capsys.readouterr().out


def test_hevc_refuses_frames_libx265_crashes_on_before_anything_is_written(tmp_path: Path) -> None:
    """libx265 (as bundled with PyAV) mishandles memory on small frames: 48x32 episodes segfaulted the process at
    exit, and 64-high frames encoded to bytes that changed with leftover heap contents. HEVC datasets take
    frames from 64 wide and 66 high, and the error names the feature and the codecs that work."""
    for h, w in ((32, 48), (64, 72)):
        small = {"observation.images.front": {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"]}}
        with pytest.raises(DatasetError, match=rf"^{tmp_path / 'small'}: feature 'observation.images.front' is "
                                               rf"{w}x{h} \(width x height\), too small for hevc, which takes frames "
                                               rf"from 64 wide and 66 high .*: use h264 or av1 \(--codec\)"):
            DatasetWriter.create(tmp_path / "small", 30, small, video_codec="hevc")
        assert not (tmp_path / "small" / INFO_PATH).exists()
    big = {"observation.images.front": {"dtype": "video", "shape": [66, 64, 3], "names": ["height", "width", "channels"]}}
    w = DatasetWriter.create(tmp_path / "big", 30, big, video_codec="hevc")
    frames = [np.full((66, 64, 3), 40 * t, dtype=np.uint8) for t in range(4)]
    for f in frames:
        w.add_frame({"observation.images.front": f}, task="t")
    w.save_episode()
    w.finalize()
    assert check_dataset(tmp_path / "big", deep=True) == []
    got = LeRobotDatasetReader(tmp_path / "big")[3]["observation.images.front"].numpy().transpose(1, 2, 0) * 255
    assert psnr(got, frames[3]) > 30


def test_convert_to_video_refuses_small_hevc_frames_naming_the_camera(tmp_path: Path) -> None:
    """`dataset convert-to-video --codec hevc` on small images is refused before anything is copied, naming the
    dataset, the camera and its size (the encoder alone saw only "video frames")."""
    from twinarm.datasets_io.to_video import images_to_video

    src = tmp_path / "png"
    write_dataset(src, [2], video=False)  # observation.images.wrist is a 24x16 image
    with pytest.raises(DatasetError, match=rf"^{src}: feature 'observation.images.wrist' is 24x16 \(width x height\), "
                                           r"too small for hevc.*use h264 or av1 \(--codec\)"):
        images_to_video(src, tmp_path / "out", codec="hevc")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", [{"info": {"is_depth_map": True}}, {"info": {"video.is_depth_map": True}}])
def test_depth_flag_on_a_colour_video_is_named_not_read_and_depth_is_never_written(tmp_path: Path, flag: dict) -> None:
    """LeRobot 0.6 flags depth cameras with `info.is_depth_map` and stores their videos as 12-bit gray12le codes
    (tests/datasets_io/test_lerobot_fixtures.py reads real ones). A colour video flagged so is named by the
    reader and the checker rather than decoded into wrong millimetres; resuming or creating a dataset with depth
    cameras is refused by name (twinarm reads them but does not write them)."""
    root = tmp_path / "ds"
    write_dataset(root, [3])
    info = load_json(root / INFO_PATH)
    assert info["features"]["observation.images.front"]["info"].get("is_depth_map", False) is False
    LeRobotDatasetReader(root)[0]  # the colour video reads
    info["features"]["observation.images.front"]["info"].update(flag["info"])
    (root / INFO_PATH).write_text(json.dumps(info))
    reader = LeRobotDatasetReader(root)
    assert list(reader.meta.depth) == ["observation.images.front"]
    with pytest.raises(DatasetError, match=r"a depth camera \(is_depth_map\) but its video is yuv420p"):
        reader[0]
    assert any("depth camera 'observation.images.front' (is_depth_map) is yuv420p" in p for p in check_dataset(root))
    with pytest.raises(DatasetError, match=r"\['observation.images.front'\] hold depth maps .* reads but does not write"):
        DatasetWriter.resume(root)
    depth = {"observation.images.depth": {"dtype": "image", "shape": [32, 48, 1], "names": ["height", "width", "channels"],
                                          "info": {"is_depth_map": True}}}
    with pytest.raises(DatasetError, match="hold depth maps"):
        DatasetWriter.create(tmp_path / "new", 30, depth)

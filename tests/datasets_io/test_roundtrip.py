"""Writer -> reader round trips: values, frames, index columns, deltas, episode subsets, DataLoader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ds_helpers import FPS, feats, psnr, write_dataset

from twinarm.arms import SO101
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.validator import check_dataset
from twinarm.datasets_io.writer import DatasetWriter


def test_roundtrip_values_frames_and_metadata(small_dataset):
    root, rec = small_dataset
    ds = LeRobotDatasetReader(root)
    assert len(ds) == 34 and ds.num_episodes == 3 and ds.fps == FPS
    starts = [0, 12, 19]
    for i in range(len(ds)):
        it = ds[i]
        ep = int(np.searchsorted(starts, i, side="right") - 1)
        assert torch.equal(it["observation.state"], torch.from_numpy(rec["state"][i]))
        assert torch.equal(it["action"], torch.from_numpy(rec["action"][i]))
        assert it["index"].item() == i and it["episode_index"].item() == ep
        assert it["frame_index"].item() == i - starts[ep]
        assert it["timestamp"].item() == pytest.approx((i - starts[ep]) / FPS, abs=1e-6)
        assert it["task"] == rec["task"][i]
        wrist = it["observation.images.wrist"]
        assert wrist.dtype == torch.float32 and wrist.shape == (3, 16, 24)
        assert np.array_equal(np.round(wrist.numpy().transpose(1, 2, 0) * 255).astype(np.uint8), rec["wrist"][i])
        front = np.round(it["observation.images.front"].numpy().transpose(1, 2, 0) * 255)
        ep_rows = range(starts[ep], starts[ep] + [12, 7, 15][ep])
        scores = [psnr(front, rec["front"][j]) for j in ep_rows]
        assert ep_rows[int(np.argmax(scores))] == i and max(scores) > 22  # lossy, but the right frame
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == 3 and info["total_frames"] == 34 and info["total_tasks"] == 2
    assert info["splits"] == {"train": "0:3"}
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    stats = json.loads((root / "meta/stats.json").read_text())
    assert set(stats["action"]) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert np.allclose(stats["action"]["mean"], np.mean(rec["action"], axis=0), atol=1e-5)
    assert np.allclose(stats["action"]["std"], np.std(rec["action"], axis=0), atol=1e-5)
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert stats["index"]["count"] == [34]
    assert check_dataset(root, deep=True) == []


def test_delta_timestamps_pad_masks_match_lerobot_rule(small_dataset):
    root, rec = small_dataset
    deltas = {"action": [0.0, 0.1, 0.2, 0.3], "observation.state": [-0.2, -0.1, 0.0],
              "observation.images.front": [-0.1, 0.0]}
    ds = LeRobotDatasetReader(root, delta_timestamps=deltas)
    it = ds[10]  # episode 0 spans rows 0..11
    assert it["action"].shape == (4, 3)
    assert it["action_is_pad"].tolist() == [False, False, True, True]
    assert torch.equal(it["action"][2], torch.from_numpy(rec["action"][11]))  # clamped to the last frame
    it = ds[12]  # first frame of episode 1
    assert it["observation.state_is_pad"].tolist() == [True, True, False]
    assert torch.equal(it["observation.state"][0], torch.from_numpy(rec["state"][12]))
    assert it["observation.images.front"].shape == (2, 3, 32, 48)
    assert it["observation.images.front_is_pad"].tolist() == [True, False]
    assert torch.equal(it["observation.images.front"][0], it["observation.images.front"][1])
    with pytest.raises(DatasetError, match="multiples of 1/10"):
        LeRobotDatasetReader(root, delta_timestamps={"action": [0.0, 0.05]})
    with pytest.raises(DatasetError, match="unknown feature"):
        LeRobotDatasetReader(root, delta_timestamps={"nope": [0.0]})


def test_episode_subset(small_dataset):
    root, rec = small_dataset
    ds = LeRobotDatasetReader(root, episodes=[2, 0], delta_timestamps={"action": [0.0, 0.1]})
    assert len(ds) == 27 and ds.num_episodes == 2
    assert {int(ds[i]["episode_index"]) for i in range(len(ds))} == {0, 2}
    it = ds[12]  # first row of episode 2 (absolute index 19)
    assert it["index"].item() == 19 and torch.equal(it["action"][1], torch.from_numpy(rec["action"][20]))
    with pytest.raises(DatasetError, match="do not exist"):
        LeRobotDatasetReader(root, episodes=[5])


def test_dataloader_workers_match_direct_access(small_dataset):
    root, _ = small_dataset
    ds = LeRobotDatasetReader(root, delta_timestamps={"action": [0.0, 0.1, 0.2]})
    direct = [ds[i] for i in range(len(ds))]  # opens decoders in this process before forking
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, shuffle=False)
    seen = 0
    for batch in loader:
        for j in range(len(batch["index"])):
            ref = direct[int(batch["index"][j])]
            for k in ("action", "observation.images.front", "observation.images.wrist", "action_is_pad"):
                assert torch.equal(batch[k][j], ref[k]), k
            seen += 1
    assert seen == len(ds)


def test_decode_to_memory_and_uint8_match(small_dataset):
    root, _ = small_dataset
    a = LeRobotDatasetReader(root)
    b = LeRobotDatasetReader(root, decode_to_memory=True, uint8_images=True)
    for i in (0, 5, 20, 33):
        fa = a[i]["observation.images.front"]
        fb = b[i]["observation.images.front"]
        assert fb.dtype == torch.uint8 and torch.equal(fa, fb.float() / 255)


def test_small_cache_still_decodes_every_frame(small_dataset):
    root, _ = small_dataset
    ref = LeRobotDatasetReader(root)
    tiny = LeRobotDatasetReader(root, frame_cache_mb=0)
    for i in np.random.default_rng(1).permutation(len(ref))[:15]:
        assert torch.equal(ref[int(i)]["observation.images.front"], tiny[int(i)]["observation.images.front"])


def test_file_rollover_and_resume(tmp_path):
    root = tmp_path / "roll"
    # tiny size limits: every episode starts new data and video files
    write_dataset(root, [5, 6, 4], data_files_size_in_mb=0.0001, video_files_size_in_mb=0.0001)
    assert len(list((root / "data").glob("*/*.parquet"))) == 3
    assert len(list((root / "videos/observation.images.front").glob("*/*.mp4"))) == 3
    w = DatasetWriter.resume(root)
    assert w.num_episodes == 3 and w.num_frames == 15
    for _ in range(8):
        w.add_frame({"observation.state": np.zeros(3, np.float32), "action": np.ones(3, np.float32),
                     "observation.images.wrist": np.zeros((16, 24, 3), np.uint8),
                     "observation.images.front": np.full((32, 48, 3), 100, np.uint8)}, task="A new task.")
    assert w.save_episode() == 3
    w.finalize()
    assert check_dataset(root, deep=True) == []
    ds = LeRobotDatasetReader(root)
    assert len(ds) == 23 and ds[22]["task"] == "A new task." and ds[22]["task_index"].item() == 2
    assert abs(float(ds[22]["observation.images.front"].mean()) * 255 - 100) < 2


def test_image_only_dataset_without_videos(tmp_path):
    root = tmp_path / "img"
    rec = write_dataset(root, [4, 3], video=False)
    ds = LeRobotDatasetReader(root)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["video_path"] is None
    assert np.array_equal(np.round(ds[6]["observation.images.wrist"].numpy().transpose(1, 2, 0) * 255), rec["wrist"][6])
    assert check_dataset(root) == []


def test_spec_features_roundtrip(tmp_path):
    cams = SO101.resolve_cameras(image_size=(24, 32))
    features = SO101.lerobot_features(cameras=cams)
    w = DatasetWriter.create(tmp_path / "so", SO101.control_hz, features, robot_type=SO101.robot_type)
    q = SO101.to_lerobot(np.linspace(-1, 1, 6).astype(np.float32) * 0.5 + np.array([0, 0, 0, 0, 0, 0.5], np.float32))
    for _ in range(3):
        w.add_frame({"observation.state": q, "action": q, **{f"observation.images.{c.name}": np.zeros(c.shape, np.uint8)
                                                            for c in cams}}, task="Pick up the cube.")
    w.save_episode()
    info = json.loads((tmp_path / "so/meta/info.json").read_text())
    for k, ft in features.items():
        assert {kk: info["features"][k][kk] for kk in ("dtype", "shape", "names")} == ft
    assert info["robot_type"] == "so_follower" and info["fps"] == 30
    ds = LeRobotDatasetReader(tmp_path / "so")
    assert np.allclose(SO101.from_lerobot(ds[0]["observation.state"].numpy()), SO101.from_lerobot(q))


@pytest.mark.parametrize(
    ("frame_edit", "match"),
    [
        (lambda f: f.update({"action": np.zeros(4, np.float32)}), "'action': expected shape"),
        (lambda f: f.update({"action": np.zeros(3, np.int64)}), "'action': expected dtype"),
        (lambda f: f.pop("observation.state"), "missing feature.*observation.state"),
        (lambda f: f.update({"extra": 1}), "unknown feature.*extra"),
        (lambda f: f.update({"observation.images.front": np.zeros((10, 10, 3), np.uint8)}), "observation.images.front"),
        (lambda f: f.update({"observation.images.wrist": np.zeros((16, 24, 3), np.int32)}), "wrist.*uint8"),
    ],
)
def test_bad_frames_raise_named_errors(tmp_path, frame_edit, match):
    w = DatasetWriter.create(tmp_path / "bad", FPS, feats())
    frame = {"observation.state": np.zeros(3, np.float32), "action": np.zeros(3, np.float32),
             "observation.images.wrist": np.zeros((16, 24, 3), np.uint8),
             "observation.images.front": np.zeros((32, 48, 3), np.uint8)}
    frame_edit(frame)
    with pytest.raises(DatasetError, match=match):
        w.add_frame(frame, task="t")


def test_float64_state_is_cast_and_task_required(tmp_path):
    w = DatasetWriter.create(tmp_path / "c", FPS, feats(video=False))
    frame = {"observation.state": np.zeros(3), "action": [0.0, 1.0, 2.0],
             "observation.images.wrist": np.zeros((3, 16, 24), np.uint8)}  # CHW accepted
    with pytest.raises(DatasetError, match="task"):
        w.add_frame(dict(frame))
    w.add_frame(frame, task="t")
    w.save_episode()
    assert LeRobotDatasetReader(tmp_path / "c")[0]["action"].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(DatasetError, match="already exists"):
        DatasetWriter.create(tmp_path / "c", FPS, feats())

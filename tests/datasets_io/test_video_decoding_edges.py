"""Video lookups at the edges: a multi-threaded decoder read to the end of a file, and frame times past 2048 s
(where float32 timestamps are coarser than the 1e-4 s tolerance)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twinarm.datasets_io.layout import frame_times
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.validator import check_dataset
from twinarm.datasets_io.video import EpisodeEncoder, FrameCache, VideoFile, concatenate, decode_all
from twinarm.datasets_io.writer import DatasetWriter


def _two_episode_file(tmp_path: Path, codec: str) -> Path:
    eps = []
    for e in range(2):
        enc = EpisodeEncoder(96, 64, 30, codec)
        for i in range(25):
            img = np.zeros((64, 96, 3), np.uint8)
            img[:, :, 0] = (i * 9 + e * 100) % 256
            img[:8, : (i % 12) * 8, 1] = 255
            enc.add(img)
        eps.append((enc.finish(), 25))
    path = tmp_path / f"{codec}.mp4"
    concatenate(eps, path, 30)
    return path


@pytest.mark.parametrize("codec", ["h264", "av1"])
@pytest.mark.parametrize("threads", [1, 4])
@pytest.mark.parametrize("cache_mb", [0, 64])
@pytest.mark.parametrize("order", ["seq", "rev", "rand"])
def test_every_frame_reads_back_in_any_order_with_decoder_threads(tmp_path, codec, threads, cache_mb, order):
    path = _two_episode_file(tmp_path, codec)
    ref, _ = decode_all(path)
    positions = {"seq": range(50), "rev": range(49, -1, -1),
                 "rand": np.random.default_rng(0).permutation(50).tolist()}[order]
    vf = VideoFile(path, 0, FrameCache(cache_mb * 2**20), threads=threads)
    try:
        bad = [int(i) for i in positions if not np.array_equal(vf.frame(int(i)), ref[int(i)])]
    finally:
        vf.close()
    assert bad == []


def test_frame_times_are_exact_where_float32_timestamps_drift_past_the_tolerance():
    fps = 30
    k = np.arange(200_000)  # 111 minutes
    ts32 = (k / fps).astype(np.float32)  # what LeRobot and twinarm store
    assert np.abs(ts32.astype(np.float64) - k / fps).max() >= 1e-4  # the drift: past 2048 s, over the tolerance
    assert np.array_equal(frame_times(ts32, k, fps), k / fps)
    # a timestamp that really differs from frame_index / fps is kept as stored, so a mismatch is still caught
    off = ts32.copy()
    off[5] += np.float32(0.01)
    assert frame_times(off, k, fps)[5] == np.float64(off[5])


def test_video_frames_read_past_2048_s_of_one_episode(tmp_path):
    """At 3 fps, frame 12289 (t = 4096.33 s) is the first whose float32 timestamp is >= 1e-4 s off."""
    fps, n = 3, 12_300
    root = tmp_path / "long"
    feats = {"observation.state": {"dtype": "float32", "shape": [1], "names": None},
             "observation.images.cam": {"dtype": "video", "shape": [16, 16, 3], "names": ["height", "width", "channels"]}}
    w = DatasetWriter.create(root, fps, feats)
    for t in range(n):
        w.add_frame({"observation.state": np.array([t], np.float32),
                     "observation.images.cam": np.full((16, 16, 3), (t * 37) % 256, np.uint8)}, task="long")
    w.save_episode()
    w.finalize()
    ds = LeRobotDatasetReader(root, uint8_images=True)
    for i in (12_289, 12_290, n - 1):
        item = ds[i]
        assert int(item["observation.state"]) == i
        assert abs(float(item["observation.images.cam"].float().mean()) - (i * 37) % 256) < 4
    batch = ds.get_batch([12_289, n - 1])
    assert batch["observation.images.cam"].shape[0] == 2
    assert check_dataset(root, deep=True) == []


def test_a_pool_keeps_a_bounded_number_of_files_open_and_no_conversion_threads_per_file(tmp_path, monkeypatch):
    """A dataset of many video files held one decoder, one descriptor and one swscale thread per CPU for every
    file ever read, in every process (a 600-file dataset: 1,200 threads per process on 2 CPUs): the pool now closes
    the least recently read file past MAX_OPEN_VIDEOS (reopened on demand, same frames) and converts on one
    thread."""
    import os

    from twinarm.datasets_io import video

    monkeypatch.setattr(video, "MAX_OPEN_VIDEOS", 3)
    paths = []
    for i in range(8):
        (tmp_path / str(i)).mkdir()
        paths.append(_two_episode_file(tmp_path / str(i), "h264"))
    refs = [decode_all(p)[0] for p in paths]
    threads_before = len(os.listdir("/proc/self/task"))
    pool = video.VideoPool(0)
    try:
        for _ in range(2):  # the second pass reopens every file the first closed
            for p, ref in zip(paths, refs, strict=True):
                assert np.array_equal(pool.get(p).frame(7), ref[7])
                assert len(pool._files) <= 3
        assert len(os.listdir("/proc/self/task")) - threads_before <= 2  # no swscale threads kept per file
    finally:
        pool.close()

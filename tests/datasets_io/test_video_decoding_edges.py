"""Video lookups at the edges: a multi-threaded decoder read to the end of a file, and frame times past 2048 s
(where float32 timestamps are coarser than the 1e-4 s tolerance)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twinarm.datasets_io.video import EpisodeEncoder, FrameCache, VideoFile, concatenate, decode_all


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
